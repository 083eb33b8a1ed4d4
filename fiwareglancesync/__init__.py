"""GlanceSync: keep the Glance image catalogues of many regions in step with a master region."""

__version__ = "2.1.0.dev0"

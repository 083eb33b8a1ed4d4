"""``glancesync-agent``: a long-running process that keeps the regions in step.

It follows the master (its notifications, or a listing every ``poll_interval``
seconds), syncs just the images that changed into the regions that select them, and
audits every region it owns every ``audit_interval`` seconds, as ``sync.py`` would.

The layers, from the outside in: :mod:`.cli` (the command line, signals),
:mod:`.service` (the loop: audit, poll, batches of changes), :mod:`.bus` (the
notification listener), :mod:`.metrics`; and the pure parts, :mod:`.changes` (what
changed between two listings of the master) and :mod:`.coalesce` (many events for an
image become one sync). Which regions an agent works on is an :class:`.owner.Owner`'s
answer: by default every region; a coordination layer can plug its own in.
"""

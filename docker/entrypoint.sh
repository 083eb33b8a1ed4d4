#!/bin/sh
# GlanceSync container entrypoint.
#
#   serve [gunicornserver options]   upgrade the database, then run the service under
#                                     gunicorn in the foreground (the image's default)
#   upgrade                           upgrade the database and exit (an init job, a test)
#   anything else                     run it as a command: glancesync --show-status,
#                                     glancesync-api shell, sh...
#
# Environment (all optional; options given after `serve` win):
#   GLANCESYNC_SOCKET    a unix socket to listen on instead of HOST:PORT, for a reverse
#                        proxy (docker/compose.yaml: /run/glancesync/api.sock behind nginx);
#                        when set, GLANCESYNC_HOST and GLANCESYNC_PORT are not used
#   GLANCESYNC_HOST      address gunicorn listens on (the image sets 0.0.0.0)
#   GLANCESYNC_PORT      port (default: PORT of the settings file, else 8080)
#   GLANCESYNC_WORKERS   worker processes (default: WORKERS of the settings file)
#   GLANCESYNC_API       the service command (default: glancesync-api)
# The service itself reads GLANCESYNC_SETTINGS_FILE, GLANCESYNC_CONFIG,
# SQLALCHEMY_DATABASE_URI or GLANCESYNCAPP_DATABASE_PATH, and the OS_* variables.
set -eu

API=${GLANCESYNC_API:-glancesync-api}

log() {
    echo "glancesync-entrypoint: $*" >&2
}

upgrade() {
    log "upgrading the database schema"
    "$API" db upgrade
}

serve() {
    upgrade
    options=""
    if [ -n "${GLANCESYNC_SOCKET:-}" ]; then
        options="$options --socket $GLANCESYNC_SOCKET"
    else
        if [ -n "${GLANCESYNC_HOST:-}" ]; then options="$options --host $GLANCESYNC_HOST"; fi
        if [ -n "${GLANCESYNC_PORT:-}" ]; then options="$options --port $GLANCESYNC_PORT"; fi
    fi
    if [ -n "${GLANCESYNC_WORKERS:-}" ]; then options="$options --workers $GLANCESYNC_WORKERS"; fi
    log "starting gunicorn:$options $*"
    # exec: gunicorn becomes this process, so `docker stop` (SIGTERM) reaches it.
    # shellcheck disable=SC2086 # the options are single words by construction
    exec "$API" gunicornserver $options "$@"
}

command=${1:-serve}
if [ "$#" -gt 0 ]; then shift; fi
case "$command" in
    serve) serve "$@" ;;
    upgrade) upgrade ;;
    *) exec "$command" "$@" ;;
esac

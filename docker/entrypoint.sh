#!/bin/sh
# GlanceSync container entrypoint.
#
#   serve [gunicornserver options]   upgrade the database, then run the service under
#                                     gunicorn in the foreground (the image's default)
#   upgrade                           upgrade the database and exit (an init job, a test)
#   agent [glancesync-agent options]  run glancesync-agent in the foreground instead of the
#                                     service (it needs no database): one container per
#                                     agent, `docker stop` is its SIGTERM, `docker kill -s
#                                     HUP` reloads its configuration
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
#   GLANCESYNC_AGENT     the agent command (default: glancesync-agent)
# The service itself reads GLANCESYNC_SETTINGS_FILE, GLANCESYNC_CONFIG,
# SQLALCHEMY_DATABASE_URI or GLANCESYNCAPP_DATABASE_PATH, and the OS_* variables.
set -eu

API=${GLANCESYNC_API:-glancesync-api}
AGENT=${GLANCESYNC_AGENT:-glancesync-agent}

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

agent() {
    log "starting the agent: $*"
    # exec: the agent becomes this process, so SIGTERM and SIGHUP reach it.
    exec "$AGENT" "$@"
}

command=${1:-serve}
if [ "$#" -gt 0 ]; then shift; fi
case "$command" in
    serve) serve "$@" ;;
    upgrade) upgrade ;;
    agent) agent "$@" ;;
    *) exec "$command" "$@" ;;
esac

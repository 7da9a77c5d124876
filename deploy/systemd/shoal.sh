#!/bin/sh
# The shoal command on a node, on the Node.js that `npm ci` installed into /opt/shoal:
#   install -m 0755 /opt/shoal/deploy/systemd/shoal.sh /usr/local/bin/shoal
#   shoal status --socket /run/shoal/agent.sock
exec /opt/shoal/node_modules/.bin/node /opt/shoal/packages/cli/bin/shoal.js "$@"

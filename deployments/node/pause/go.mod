module anyroute.local/node/pause

go 1.26.0

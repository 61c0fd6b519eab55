package agent

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/srv6cpe/srv6cpe/board"
	"github.com/srv6cpe/srv6cpe/dataplane"
)

// probeTimeout bounds opening the netlink dataplane and its capability probe.
const probeTimeout = 30 * time.Second

// prefixSource builds the source wan describes: the static one, or a
// netlink watch of the WAN address or of the delegated-prefix route.
func prefixSource(w WANConfig, log *zap.Logger) board.PrefixSource {
	if w.PrefixSource == PrefixStatic {
		return board.NewStaticPrefix(w.StaticPrefix, w.StaticAddress)
	}
	mode := board.PrefixFromAddress
	if w.PrefixSource == PrefixFromRoute {
		mode = board.PrefixFromRoute
	}
	return board.NewNetlinkPrefix(board.NetlinkPrefixOptions{
		Interface: w.Interface,
		Mode:      mode,
		Debounce:  w.Debounce,
		// Our locator unreachable routes lie inside the delegated prefix:
		// never take them for it.
		IgnoreRouteProtocols: []int{dataplane.RouteProtocol},
		Logger:               log,
	})
}

// openDataplane opens the netlink dataplane on the WAN interface and probes it.
func openDataplane(wan string, log *zap.Logger) (*dataplane.Kernel, error) {
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	return dataplane.Open(ctx, dataplane.Options{WANInterface: wan, Logger: log})
}

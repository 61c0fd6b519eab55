package agent_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"time"

	"github.com/srv6cpe/srv6cpe/agent"
	"github.com/srv6cpe/srv6cpe/board"
	"github.com/srv6cpe/srv6cpe/dataplane"
)

// Example embeds the agent as a vendor would: the board gives the
// delegated prefix (here a static one), the dataplane is the recording fake
// (on a device: leave WithDataplane out and the agent opens the netlink
// one on cfg.WAN.Interface), and the agent runs under the caller's context.
func Example() {
	stateDir, err := os.MkdirTemp("", "srv6cpe-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(stateDir)

	ext := agent.Function(0x5)
	cfg := agent.Config{
		StateDir: stateDir,
		WAN:      agent.WANConfig{Interface: "wan0"},
		SRv6:     agent.SRv6Config{LocatorLen: 48, FunctionLen: 16, Extension: &ext},
		Services: []agent.ServiceConfig{
			{Name: "end", Behavior: "End", Function: 0x1},
			{Name: "vpn6", Behavior: "End.DT6", Function: 0x6},
		},
	}
	prefix := board.NewStaticPrefix(netip.MustParsePrefix("2001:db8:1200::/40"), netip.MustParseAddr("2001:db8:1200::1"))
	dp := dataplane.NewFake(dataplane.Capabilities{EndDT6Table: true})
	a, err := agent.New(cfg, agent.WithPrefixSource(prefix), agent.WithDataplane(dp))
	if err != nil {
		fmt.Println(err)
		return
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	for deadline := time.Now().Add(5 * time.Second); a.Status().State != agent.StateApplied && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	st := a.Status()
	cancel()
	if err := <-done; err != nil {
		fmt.Println(err)
		return
	}

	fmt.Println("locator", st.Locator)
	for _, s := range st.SIDs {
		fmt.Println(s.Name, s.SID, s.Installed)
	}
	// What the kernel would hold, as ip -6 route shows it.
	for _, r := range dp.Routes() {
		fmt.Println(r)
	}
	// Output:
	// locator 2001:db8:1205::/48
	// end 2001:db8:1205:1:: End
	// vpn6 2001:db8:1205:6:: End.DT6 table main
	// unreachable 2001:db8:1205::/48
	// 2001:db8:1205:1::/128 encap seg6local action End dev wan0
	// 2001:db8:1205:6::/128 encap seg6local action End.DT6 table 254 dev wan0
}

package agent

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/srv6cpe/srv6cpe/bgp"
	"github.com/srv6cpe/srv6cpe/dataplane"
	"github.com/srv6cpe/srv6cpe/srv6"
)

// faultEncaps are a Fake's seg6 encap routes, sorted.
func faultEncaps(dp *dataplane.Fake) []string {
	var out []string
	for _, r := range dp.Routes() {
		if strings.Contains(r, "encap seg6 ") {
			out = append(out, r)
		}
	}
	slices.Sort(out)
	return out
}

// faultWait polls ok for up to 5s, failing with what's state says.
func faultWait(t *testing.T, what string, ok func() bool, state func() string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5s; %s", what, state())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// faultFlapRoutes is a random set of what the peer advertises: some of 40
// prefixes (IPv4 and IPv6), each on one of 3 remote SIDs, plus routes of
// another VPN the agent must not import. want is the encap routes the
// Fake must then hold.
func faultFlapRoutes(rng *rand.Rand) (routes []bgp.RemoteRoute, want []string) {
	for i := range 40 {
		if rng.IntN(3) == 0 {
			continue
		}
		v4 := i%2 == 0
		prefix := netip.MustParsePrefix(fmt.Sprintf("192.168.%d.0/24", 10+i))
		sid := netip.MustParseAddr(fmt.Sprintf("2001:db8:%d205:4::", 2+rng.IntN(3)))
		beh := srv6.EndDT4
		if !v4 {
			prefix = netip.MustParsePrefix(fmt.Sprintf("2001:db8:22%02d::/64", i))
			sid = netip.MustParseAddr(fmt.Sprintf("2001:db8:%d205:6::", 2+rng.IntN(3)))
			beh = srv6.EndDX6
		}
		routes = append(routes, bgp.RemoteRoute{RD: "65000:2", RTs: []string{"65000:100"}, Prefix: prefix, SID: sid,
			Behavior: beh, NextHop: netip.MustParseAddr("2001:db8:2200::1")})
		want = append(want, fmt.Sprintf("%s encap seg6 mode encap segs [ %s ] dev wan0", prefix, sid))
		if rng.IntN(4) == 0 {
			routes = append(routes, bgp.RemoteRoute{RD: "65000:7", RTs: []string{"65000:700"},
				Prefix: netip.MustParsePrefix(fmt.Sprintf("10.77.%d.0/24", i)), SID: netip.MustParseAddr("2001:db8:7705:4::"),
				Behavior: srv6.EndDT4, NextHop: netip.MustParseAddr("2001:db8:7700::1")})
		}
	}
	slices.Sort(want)
	return routes, want
}

// The BGP peer flaps 20 times. Each time the session drops, every learned
// route is withdrawn and the agent removes its encap route; when the
// session is back the peer advertises a different set (routes gone, SIDs
// moved, routes new) and the Fake ends holding exactly that set: no stale
// encap route, and the local SIDs untouched throughout. Every other flap
// is too quick for the agent to see the empty table in between.
func TestFaultBGPPeerFlaps(t *testing.T) {
	fb := bgp.NewFake()
	peer := netip.MustParseAddr("2001:db8:ff::1")
	fb.SetPeers([]bgp.PeerState{{Address: peer, State: bgp.StateEstablished}})
	dp := dataplane.NewFake(noVRF)
	h := start(t, mustConfig(t, bgpConfig), noVRF, t.TempDir(), WithDataplane(dp),
		WithBGP(func(bgp.Config, *zap.Logger) (bgp.Service, error) { return fb, nil }),
		WithPeerPoll(10*time.Millisecond), WithBGPSettle(20*time.Millisecond, time.Second))
	h.src.send(t, "2001:db8:1200::/40", "2001:db8:1200::1")
	h.waitStatus(func(s Status) bool { return s.State == StateApplied && s.BGP != nil && s.BGP.Exported == 2 })
	localSIDs := func() []string {
		var out []string
		for _, r := range dp.Routes() {
			if !strings.Contains(r, "encap seg6 ") {
				out = append(out, r)
			}
		}
		return out
	}
	sids := localSIDs()
	if len(sids) == 0 {
		t.Fatal("no local SIDs installed")
	}
	state := func() string {
		return fmt.Sprintf("encap routes %q, status %+v", faultEncaps(dp), h.agent.Status().BGP)
	}
	rng := rand.New(rand.NewPCG(9, uint64(time.Now().UnixNano())))
	installs, withdrawals := 0, 0
	for i := range 20 {
		routes, want := faultFlapRoutes(rng)
		// Session down: the peer's routes are withdrawn.
		fb.SetPeers([]bgp.PeerState{{Address: peer, State: bgp.StateActive}})
		if err := fb.SetRemoteRoutes(nil); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			faultWait(t, fmt.Sprintf("flap %d: every encap route withdrawn", i), func() bool { return len(faultEncaps(dp)) == 0 }, state)
			h.waitStatus(func(s Status) bool { return s.BGP.Installed == 0 && s.BGP.Peers[0].State == "active" })
			withdrawals++
		}
		// Session back with another set.
		fb.SetPeers([]bgp.PeerState{{Address: peer, State: bgp.StateEstablished}})
		if err := fb.SetRemoteRoutes(routes); err != nil {
			t.Fatal(err)
		}
		faultWait(t, fmt.Sprintf("flap %d: the new set of %d routes installed", i, len(want)),
			func() bool { return slices.Equal(faultEncaps(dp), want) }, state)
		h.waitStatus(func(s Status) bool {
			return s.State == StateApplied && s.BGP.Installed == len(want) && s.BGP.Peers[0].State == "established"
		})
		if got := localSIDs(); !slices.Equal(got, sids) {
			t.Fatalf("flap %d: local SIDs changed: %q, want %q", i, got, sids)
		}
		installs += len(want)
	}
	t.Logf("20 flaps (%d waited out empty): %d encap routes re-installed in all, none stale after any flap", withdrawals, installs)
}

// faultConfig is the example config with n static encap routes.
func faultConfig(t *testing.T, n int, seg string) Config {
	t.Helper()
	cfg := exampleConfig(t)
	for i := range n {
		cfg.Remote = append(cfg.Remote, RemoteRoute{Prefix: netip.MustParsePrefix(fmt.Sprintf("10.9.%d.0/24", i)),
			Segments: Segments{netip.MustParseAddr(seg)}})
	}
	return cfg
}

// faultCleanRoutes is what a fresh agent on an empty Fake installs for cfg and
// this prefix: the state a run without faults converges to.
func faultCleanRoutes(t *testing.T, cfg Config, prefix, addr string) []string {
	t.Helper()
	dp := dataplane.NewFake(noVRF)
	h := start(t, cfg, noVRF, t.TempDir(), WithDataplane(dp))
	h.src.send(t, prefix, addr)
	h.waitStatus(func(s Status) bool { return s.State == StateApplied })
	h.stop()
	return dp.Routes()
}

// Netlink errors injected into the middle of an Apply (the Fake goes on
// with the other changes, as the kernel does, so the Apply is half done):
// the agent's status says retrying and names the error and the failed
// change, the retry converges, and the Fake ends equal to a clean run.
// Failures that outlast several retries are reported on each.
func TestFaultNetlinkErrorsRetried(t *testing.T) {
	for _, tc := range []struct {
		err   unix.Errno
		fails int // operations failed in a row: > 20 outlasts one Apply
	}{
		{unix.EEXIST, 1}, {unix.ENOMEM, 3}, {unix.EBUSY, 5}, {unix.ENOMEM, 45},
	} {
		t.Run(fmt.Sprintf("%s_x%d", tc.err, tc.fails), func(t *testing.T) {
			cfg1 := faultConfig(t, 10, "2001:db8:2205:4::")
			cfg2 := faultConfig(t, 20, "2001:db8:3305:4::")
			want := faultCleanRoutes(t, cfg2, "2001:db8:1200::/40", "2001:db8:1200::1")

			dp := dataplane.NewFake(noVRF)
			// Retries far enough apart to see the half-applied state.
			h := start(t, cfg1, noVRF, t.TempDir(), WithDataplane(dp), WithRetryBackoff(150*time.Millisecond, 300*time.Millisecond))
			h.src.send(t, "2001:db8:1200::/40", "2001:db8:1200::1")
			h.waitStatus(func(s Status) bool { return s.State == StateApplied })
			applies := dp.Applies()

			// The reload replaces 10 routes and adds 10: about 20 changes.
			dp.FailNext(tc.fails, tc.err)
			if err := h.agent.Reload(cfg2); err != nil {
				t.Fatal(err)
			}
			st := h.waitStatus(func(s Status) bool { return s.Failures >= 1 })
			if st.State != StateRetrying || !strings.Contains(st.LastError, tc.err.Error()) || st.NextRetry.IsZero() {
				t.Errorf("status after the failed Apply: state %s, last error %q, next retry %v; want retrying, naming %q",
					st.State, st.LastError, st.NextRetry, tc.err.Error())
			}
			if !strings.Contains(st.LastError, "route 10.9.") {
				t.Errorf("last error %q does not name the failed route", st.LastError)
			}
			if half := dp.Routes(); slices.Equal(half, want) {
				t.Errorf("the Fake already equals the desired state after a failed Apply")
			}
			st = h.waitStatus(func(s Status) bool { return s.State == StateApplied })
			if st.LastError != "" || st.Failures != 0 {
				t.Errorf("status after convergence: %+v", st)
			}
			if got := dp.Routes(); !slices.Equal(got, want) {
				t.Errorf("after the retry the Fake holds\n%q\nwant (a clean run)\n%q", got, want)
			}
			t.Logf("%d x %s: %d Applies to converge", tc.fails, tc.err, dp.Applies()-applies)
		})
	}
}

// A failure that does not go away (another protocol's route on a prefix the
// config wants: EEXIST every time) is reported on every retry and never
// hidden, while everything else is installed; removing the obstacle's
// cause (the config entry) converges.
func TestFaultNetlinkPersistentEEXIST(t *testing.T) {
	cfg := faultConfig(t, 5, "2001:db8:2205:4::")
	dp := dataplane.NewFake(noVRF)
	dp.AddForeignRoute(netip.MustParsePrefix("10.9.3.0/24"), 0)
	h := start(t, cfg, noVRF, t.TempDir(), WithDataplane(dp), WithRetryBackoff(10*time.Millisecond, 20*time.Millisecond))
	h.src.send(t, "2001:db8:1200::/40", "2001:db8:1200::1")
	st := h.waitStatus(func(s Status) bool { return s.Failures >= 5 })
	if st.State != StateRetrying || !strings.Contains(st.LastError, "10.9.3.0/24") || !strings.Contains(st.LastError, unix.EEXIST.Error()) {
		t.Errorf("status with a foreign route in the way: state %s, last error %q", st.State, st.LastError)
	}
	got := faultEncaps(dp)
	if len(got) != 4 || slices.ContainsFunc(got, func(r string) bool { return strings.HasPrefix(r, "10.9.3.0/24") }) {
		t.Errorf("encap routes with 10.9.3.0/24 blocked: %q, want the other 4", got)
	}
	cfg.Remote = slices.DeleteFunc(cfg.Remote, func(r RemoteRoute) bool { return r.Prefix.String() == "10.9.3.0/24" })
	if err := h.agent.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	st = h.waitStatus(func(s Status) bool { return s.State == StateApplied })
	if st.LastError != "" || len(faultEncaps(dp)) != 4 {
		t.Errorf("after dropping the blocked route: status %+v, encaps %q", st, faultEncaps(dp))
	}
}

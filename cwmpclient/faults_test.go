package cwmpclient

import (
	"slices"
	"testing"
	"time"

	"github.com/srv6cpe/srv6cpe/internal/cwmpschema"
)

// acsOutage follows the dial attempts of clients whose ACS refuses every
// connection: each time a client's loop is idle, the attempts made since
// happened at the fake clock's current time (it only moves when the test
// advances it).
type acsOutage struct {
	t     *testing.T
	acs   *fakeACS
	total int // failDials when the outage began
	seen  int
}

func startOutage(t *testing.T, acs *fakeACS) *acsOutage {
	const down = 1 << 30
	acs.mu.Lock()
	acs.failDials = down
	acs.mu.Unlock()
	return &acsOutage{t: t, acs: acs, total: down}
}

// attempts is how many dials failed so far.
func (o *acsOutage) attempts() int {
	o.acs.mu.Lock()
	defer o.acs.mu.Unlock()
	return o.total - o.acs.failDials
}

func (o *acsOutage) sessions() int {
	o.acs.mu.Lock()
	defer o.acs.mu.Unlock()
	return o.acs.sessions
}

// run advances h's clock from wake to wake until fails more dials failed,
// and returns the time of each failed dial.
func (o *acsOutage) run(h *harness, fails int) []time.Time {
	o.t.Helper()
	var at []time.Time
	for i := 0; i < 1000 && len(at) < fails; i++ {
		d := h.clk.nextSleep(o.t)
		for n := o.attempts(); o.seen < n; o.seen++ {
			at = append(at, h.clk.Now())
		}
		if len(at) < fails {
			h.clk.Advance(d)
		}
	}
	if len(at) < fails {
		o.t.Fatalf("%d dial attempts in 1000 wakes, want %d", len(at), fails)
	}
	return at
}

// checkBackoff: the time between failed attempt n and n+1 is exactly
// RetryWait(n) (TR-069 §3.2.1.1 with the defaults m=5 s, k=2000 and the
// harness's random draw of 0.5), the 10th and later ones capped.
func checkBackoff(t *testing.T, what string, at []time.Time) {
	t.Helper()
	for n := 1; n < len(at); n++ {
		want := RetryWait(n, 0, 0, func() float64 { return 0.5 })
		if got := at[n].Sub(at[n-1]); got != want {
			t.Errorf("%s: wait before retry %d = %v, want %v", what, n, got, want)
		}
	}
}

func sortedCodes(evs []EventStruct) []string {
	var out []string
	for _, e := range evs {
		c := e.Code
		if e.CommandKey != "" {
			c += "/" + e.CommandKey
		}
		out = append(out, c)
	}
	slices.Sort(out)
	return out
}

// The ACS goes away for hours, with a download and a scheduled inform
// completing and more events piling up meanwhile, the device reboots while
// it is still away, then it comes back. Every event TR-069 keeps across a
// reboot reaches the ACS in the first session; the ones it drops on boot
// (4 VALUE CHANGE, 6 CONNECTION REQUEST, 8 DIAGNOSTICS COMPLETE) do not;
// the back-off follows §3.2.1.1 at every step before and after the
// reboot; RetryCount counts the failed attempts of this boot.
func TestFaultACSDownAcrossReboot(t *testing.T) {
	cwmpschema.Tool(t)
	store := newMemStore()
	acs := &fakeACS{t: t, script: []string{
		`<cwmp:ScheduleInform><DelaySeconds>600</DelaySeconds><CommandKey>sched-1</CommandKey></cwmp:ScheduleInform>`,
		`<cwmp:Download><CommandKey>dl-1</CommandKey><FileType>3 Vendor Configuration File</FileType><URL>http://files.test/cfg</URL><Username></Username><Password></Password><FileSize>0</FileSize><TargetFileName></TargetFileName><DelaySeconds>300</DelaySeconds><SuccessURL></SuccessURL><FailureURL></FailureURL></cwmp:Download>`,
	}}
	h := startClient(t, store, acs, testConfig(), Deps{})
	// The boot session bootstraps and accepts both RPCs; the loop then
	// waits for the delayed download.
	if d := h.clk.nextSleep(t); d != 300*time.Second {
		t.Fatalf("idle for %v after the boot session, want the download's 300s", d)
	}
	// The ACS goes away. Events arrive without asking for a session (as a
	// value change found by the periodic check would before its throttle).
	out := startOutage(t, acs)
	if err := h.c.events.Add(
		EventStruct{Code: EventValueChange}, EventStruct{Code: EventConnectionRequest},
		EventStruct{Code: EventDiagnosticsDone}, EventStruct{Code: "X 00AABB Alarm"},
	); err != nil {
		t.Fatal(err)
	}
	h.clk.Advance(300 * time.Second)
	// The download completes at 300s and asks for a session: 12 attempts,
	// past the cap at the 10th; the scheduled inform fires at 600s, in the
	// middle of the back-off, without shortening it.
	before := out.run(h, 12)
	checkBackoff(t, "before the reboot", before)
	if first := before[0].Sub(before[0].Truncate(time.Hour)); first != 300*time.Second {
		t.Errorf("first attempt %v into the hour, want at 300s when the download completed", first)
	}
	t.Logf("before the reboot: %d failed attempts over %v", len(before), before[len(before)-1].Sub(before[0]))
	if got, want := sortedCodes(h.c.events.Pending()), slices.Sorted(slices.Values([]string{
		EventValueChange, EventConnectionRequest, EventTransferComplete, EventScheduled,
		EventDiagnosticsDone, EventMDownload + "/dl-1", EventMScheduleInform + "/sched-1", "X 00AABB Alarm",
	})); !slices.Equal(got, want) {
		t.Fatalf("pending before the reboot: %v, want %v", got, want)
	}
	if n := out.sessions(); n != 1 {
		t.Fatalf("%d sessions reached the ACS, want only the boot session", n)
	}

	// Reboot while the ACS is still away: a new client on the same store.
	h.stop()
	h2 := startClient(t, store, acs, testConfig(), Deps{})
	after := out.run(h2, 5)
	checkBackoff(t, "after the reboot", after)
	// The ACS comes back for the 6th attempt of this boot.
	acs.mu.Lock()
	acs.failDials = 0
	acs.mu.Unlock()
	h2.clk.Advance(RetryWait(5, 0, 0, func() float64 { return 0.5 }))
	h2.clk.nextSleep(t)
	if n := out.sessions(); n != 2 {
		t.Fatalf("%d sessions, want the one after the outage", n)
	}
	ev, _, retry := acs.informOf(1)
	slices.Sort(ev)
	want := []string{EventBoot, EventTransferComplete, EventScheduled, EventMDownload + "/dl-1", EventMScheduleInform + "/sched-1", "X 00AABB Alarm"}
	slices.Sort(want)
	if !slices.Equal(ev, want) {
		t.Errorf("first Inform after the outage: %v, want %v", ev, want)
	}
	if retry != "5" {
		t.Errorf("RetryCount %s after 5 failed attempts of this boot, want 5", retry)
	}
	if m := acs.methods(1); !slices.Equal(m, []string{"Inform", "TransferComplete", ""}) {
		t.Errorf("session after the outage sent %v, want Inform, TransferComplete", m)
	}
	if p, x := h2.c.events.Pending(), h2.c.events.Transfers(); len(p) != 0 || len(x) != 0 {
		t.Errorf("after the acknowledged session: pending %v, transfers %v", sortedCodes(p), x)
	}

	// Back to normal: the next session carries only its own event and a
	// RetryCount of 0.
	if err := h2.c.AddEvent(EventStruct{Code: "X 00AABB Later"}); err != nil {
		t.Fatal(err)
	}
	h2.clk.nextSleep(t)
	if ev, _, retry := acs.informOf(2); !slices.Equal(ev, []string{"X 00AABB Later"}) || retry != "0" {
		t.Errorf("next session: events %v RetryCount %s, want only X 00AABB Later and 0", ev, retry)
	}
	t.Logf("after the reboot: %d failed attempts, then one session delivered %v with RetryCount %s", len(after), want, retry)
}

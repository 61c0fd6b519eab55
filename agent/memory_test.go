package agent

import (
	"bufio"
	"bytes"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestProgramMappings(t *testing.T) {
	const exe = "/usr/sbin/srv6cpe"
	// entry is one mapping of a /proc/PID/smaps text.
	entry := func(header string, anonKB int) string {
		return header + "\nSize:               1024 kB\nRss:                 512 kB\nAnonymous:    " +
			strconv.Itoa(anonKB) + " kB\nVmFlags: rd mr mw me\n"
	}
	smaps := entry("00400000-00cb5000 r-xp 00000000 fe:00 123 /usr/sbin/srv6cpe", 0) +
		entry("00cb5000-0168a000 r--p 008b5000 fe:00 123 /usr/sbin/srv6cpe", 0) +
		entry("0168a000-01700000 r--p 0128a000 fe:00 123 /usr/sbin/srv6cpe", 8) + // RELRO: written by the loader
		entry("01700000-01704000 rw-p 01300000 fe:00 123 /usr/sbin/srv6cpe", 0) +
		entry("01704000-01800000 rw-p 00000000 00:00 0", 100) +
		entry("7f0000000000-7f0000001000 r--s 00000000 fe:00 9 /usr/sbin/srv6cpe", 0) +
		entry("7f0000001000-7f0000002000 r--p 00000000 fe:00 77 /usr/lib/other.so", 0) +
		entry("7f0000002000-7f0000003000 r--p 00000000 fe:00 78 /usr/sbin/srv6cpe.old", 0) +
		entry("zz-01 r--p 00000000 fe:00 123 /usr/sbin/srv6cpe", 0) +
		"00400000-00500000 r-xp 00000000 fe:00 123 /usr/sbin/srv6cpe\n" // cut off: no Anonymous line
	want := []programMapping{
		{addrRange{0x400000, 0xcb5000}, 0},
		{addrRange{0xcb5000, 0x168a000}, 0},
		{addrRange{0x168a000, 0x1700000}, 8},
		{addrRange{0x400000, 0x500000}, -1},
	}
	if got := programMappings([]byte(smaps), exe); !slices.Equal(got, want) {
		t.Fatalf("smaps: programMappings = %#v, want %#v", got, want)
	}

	// /proc/PID/maps has no fields. A replaced binary: the kernel appends
	// " (deleted)", and paths may hold spaces; the padding before the path
	// varies.
	deleted := "/opt/my dir/srv6cpe (deleted)"
	maps := "00400000-00500000 r-xp 00000000 fe:00 5                          " + deleted + "\n" +
		"00500000-00600000 rw-p 00100000 fe:00 5                          " + deleted + "\n"
	if got := programMappings([]byte(maps), deleted); !slices.Equal(got, []programMapping{{addrRange{0x400000, 0x500000}, -1}}) {
		t.Fatalf("maps: programMappings = %#v", got)
	}
}

func TestStaticExecutable(t *testing.T) {
	// Debian's /bin/sh is a dynamically linked PIE.
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skipf("no /bin/sh: %v", err)
	}
	if static, err := staticExecutable("/bin/sh"); err != nil || static {
		t.Fatalf("staticExecutable(/bin/sh) = %v, %v; want false", static, err)
	}
	if _, err := staticExecutable("/proc/self/exe"); err != nil {
		t.Fatal(err)
	}
	if _, err := staticExecutable("/nonexistent"); err == nil {
		t.Fatal("staticExecutable of a missing file: no error")
	}
}

// TestDropProgramPages drops this test binary's read-only pages and checks
// that it keeps running and fewer of them are resident.
func TestDropProgramPages(t *testing.T) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		t.Skipf("no /proc/self/exe: %v", err)
	}
	before := programRSS(t, exe)
	if err := dropProgramPages(); err != nil {
		t.Fatal(err)
	}
	after := programRSS(t, exe)
	t.Logf("read-only pages of the test binary resident: %d KiB before, %d KiB after", before, after)
	if after >= before {
		t.Fatalf("resident read-only pages did not shrink: %d KiB before, %d KiB after", before, after)
	}
}

// programRSS sums the Rss of exe's read-only mappings in /proc/self/smaps.
func programRSS(t *testing.T, exe string) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Skipf("no /proc/self/smaps: %v", err)
	}
	total, in := 0, false
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if f := strings.SplitN(line, " ", 6); len(f) == 6 && strings.Contains(f[0], "-") {
			in = strings.TrimLeft(f[5], " ") == exe && !strings.Contains(f[1], "w")
			continue
		}
		if v, ok := strings.CutPrefix(line, "Rss:"); ok && in {
			kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			if err != nil {
				t.Fatalf("smaps line %q: %v", line, err)
			}
			total += kb
		}
	}
	return total
}

func TestMemoryReleaseAfterStartAndBursts(t *testing.T) {
	released := make(chan struct{}, 4)
	var mu sync.Mutex
	clock := time.Now()
	advance := func(d time.Duration) {
		mu.Lock()
		clock = clock.Add(d)
		mu.Unlock()
	}
	m := memoryRelease{
		release: func() { released <- struct{}{} },
		now: func() time.Time {
			mu.Lock()
			defer mu.Unlock()
			return clock
		},
	}
	wait := func(what string) {
		t.Helper()
		select {
		case <-released:
		case <-time.After(burstSettle + 5*time.Second):
			t.Fatalf("no release %s", what)
		}
	}
	none := func(what string) {
		t.Helper()
		select {
		case <-released:
			t.Fatalf("released memory %s", what)
		case <-time.After(burstSettle + 500*time.Millisecond):
		}
	}

	m.applied(0) // start-up
	advance(startupWindow / 2)
	m.applied(2) // still start-up: the first routes
	wait("after start-up")

	advance(startupWindow)
	m.applied(5) // a small change of a small table
	none("after a small change of a small table")

	m.applied(5 + burstRoutes) // a burst
	wait("after a burst")
	m.applied(5 + burstRoutes) // a resync of a large table
	wait("after a resync of a large table")

	// Applies every 200 ms defer the release by burstMaxDefer at most:
	// the clock runs 5x faster than the timer here.
	for i := 0; ; i++ {
		if i == 40 {
			t.Fatal("applies that go on deferred the release for good")
		}
		m.applied(5 + burstRoutes)
		advance(time.Second)
		select {
		case <-released:
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}

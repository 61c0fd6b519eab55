package agent

import (
	"bufio"
	"bytes"
	"debug/elf"
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// When the agent hands memory back to the kernel, once things have settled
// for burstSettle:
//   - after a burst: one apply added or removed at least burstRoutes encap
//     routes (a full BGP table arriving or leaving);
//   - after start-up: every apply in the startup window after the first one
//     (sessions coming up, the first routes);
//   - after every apply while at least burstRoutes encap routes are
//     installed: each apply, the periodic resync too, reads the kernel's
//     table and diffs it; with 10,000 routes that took the daemon's
//     anonymous RSS from 22 to 42 MiB at the first resync, and the runtime
//     kept it.
//
// Applies that go on defer the release, by burstMaxDefer at most.
const (
	burstRoutes   = 1000
	burstSettle   = 2 * time.Second
	burstMaxDefer = 10 * time.Second
	startupWindow = time.Minute
)

// memoryRelease returns memory to the kernel (see burstRoutes for when).
// Without it the Go runtime keeps the pages of a burst's garbage (UPDATE
// decoding, route sets, netlink dumps and batches) resident for minutes:
// with 10,000 routes learned the live heap is about 14 MiB but the process
// would hold over 40 MiB of anonymous memory, and on a CPE that memory
// belongs to the rest of the box. Small tables and small changes after
// start-up never pay for the forced collection. The zero value is ready;
// release is releaseMemory and now time.Now unless a test sets them.
type memoryRelease struct {
	mu      sync.Mutex
	first   time.Time // of the first apply
	encaps  int       // encap routes the last good apply held
	pending *time.Timer
	since   time.Time // when the pending release was scheduled; zero if none is
	release func()
	now     func() time.Time
}

func (m *memoryRelease) applied(encaps int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now
	if m.now != nil {
		now = m.now
	}
	t := now()
	if m.first.IsZero() {
		m.first = t
	}
	delta := encaps - m.encaps
	m.encaps = encaps
	startup := t.Sub(m.first) < startupWindow
	burst := delta >= burstRoutes || -delta >= burstRoutes
	if !startup && !burst && encaps < burstRoutes {
		return
	}
	switch {
	case m.since.IsZero():
		m.since = t
		if m.pending == nil {
			m.pending = time.AfterFunc(burstSettle, m.fire)
		} else {
			m.pending.Reset(burstSettle)
		}
	case t.Sub(m.since) < burstMaxDefer:
		// Wait for the rest of the burst (BGP advertisements, status,
		// the speaker's own processing) to settle.
		m.pending.Reset(burstSettle)
	}
}

func (m *memoryRelease) fire() {
	m.mu.Lock()
	m.since = time.Time{}
	release := m.release
	m.mu.Unlock()
	if release == nil {
		release = releaseMemory
	}
	release()
}

// releaseMemory hands the heap's free pages and the program's idle code
// pages back to the kernel.
func releaseMemory() {
	debug.FreeOSMemory()
	_ = dropProgramPages() // best effort: without /proc nothing is dropped
}

// dropProgramPages unmaps the resident pages of the executable's read-only
// segments (code, read-only data, the function tables). Start-up runs every
// package's init and the kernel maps code 64 KiB around each fault, so some
// 80 % of a Go binary stays mapped (about 15 MiB of a 16 MiB RSS when idle)
// although an idle daemon runs a small part of it. The pages are clean
// copies of the file: what runs again faults back in from the page cache,
// the rest becomes reclaimable. Writable segments, and read-only ones with
// pages of their own (relocations the dynamic loader wrote, RELRO), are
// never touched: /proc/self/smaps says which those are. Kernels without it
// (CONFIG_PROC_PAGE_MONITOR, off in OpenWrt's) only list the mappings; then
// only a static non-PIE executable, which no loader relocated, is trimmed.
func dropProgramPages() error {
	const self = "/proc/self/exe"
	exe, err := os.Readlink(self)
	if err != nil {
		return err
	}
	var ranges []addrRange
	if smaps, err := os.ReadFile("/proc/self/smaps"); err == nil {
		for _, m := range programMappings(smaps, exe) {
			if m.anonKB == 0 {
				ranges = append(ranges, m.addrRange)
			}
		}
	} else {
		static, err := staticExecutable(self)
		if err != nil || !static {
			return err
		}
		maps, err := os.ReadFile("/proc/self/maps")
		if err != nil {
			return err
		}
		for _, m := range programMappings(maps, exe) {
			ranges = append(ranges, m.addrRange)
		}
	}
	for _, r := range ranges {
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, r.start, r.end-r.start, unix.MADV_DONTNEED); errno != 0 {
			return fmt.Errorf("madvise %#x-%#x: %w", r.start, r.end, errno)
		}
	}
	return nil
}

// staticExecutable reports whether the ELF file at path is a non-PIE
// executable without an interpreter: nothing relocates it at load time.
func staticExecutable(path string) (bool, error) {
	f, err := elf.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	if f.Type != elf.ET_EXEC {
		return false, nil
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			return false, nil
		}
	}
	return true, nil
}

type addrRange struct{ start, end uintptr }

// programMapping is a private, not writable mapping of the program file;
// anonKB is its "Anonymous:" field (pages written since it was mapped), -1
// where the text (/proc/PID/maps) has none.
type programMapping struct {
	addrRange
	anonKB int
}

// programMappings returns the private, not writable mappings of file path
// in a /proc/PID/smaps or /proc/PID/maps text.
func programMappings(text []byte, path string) []programMapping {
	var out []programMapping
	cur := -1 // index in out of the mapping whose fields follow
	sc := bufio.NewScanner(bytes.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "Anonymous:"); ok {
			if cur >= 0 {
				kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
				if err != nil {
					kb = 1 // unreadable: treat as written
				}
				out[cur].anonKB = kb
			}
			continue
		}
		// A mapping's header: address perms offset dev inode path; the path
		// may hold spaces (and ends in " (deleted)" once the file was
		// replaced). Field lines ("Rss:   12 kB") have no address range.
		f := strings.SplitN(line, " ", 6)
		if len(f) < 6 || !strings.Contains(f[0], "-") {
			continue
		}
		cur = -1
		perms := f[1]
		if strings.TrimLeft(f[5], " ") != path || len(perms) != 4 || perms[1] != '-' || perms[3] != 'p' {
			continue
		}
		lo, hi, _ := strings.Cut(f[0], "-")
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		out = append(out, programMapping{addrRange{uintptr(start), uintptr(end)}, -1})
		cur = len(out) - 1
	}
	return out
}

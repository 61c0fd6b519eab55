package cwmpclient

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DeviceInfo is the device identity (Device.DeviceInfo.), given as plain
// strings so this package does not depend on the board package.
type DeviceInfo struct {
	Manufacturer, ManufacturerOUI, ModelName, Description, ProductClass string
	SerialNumber, HardwareVersion, SoftwareVersion                      string
}

// IPInterface is one row of Device.IP.Interface.{i}. Index must be stable
// for the life of the interface (the ifindex fits).
type IPInterface struct {
	Index         uint32
	Name          string
	Enable        bool
	Status        string // TR-181 Status: Up, Down, Dormant, ...
	IPv6Addresses []string
	IPv6Prefixes  []string // CIDR, e.g. the delegated prefix
}

// ManagementDefaults are the factory values of Device.ManagementServer.;
// once the ACS sets a parameter the stored value wins (a factory reset
// forgets it).
type ManagementDefaults struct {
	URL, Username, Password           string
	PeriodicInformEnable              bool
	PeriodicInformInterval            uint32 // seconds; 0 means 3600
	PeriodicInformTime                time.Time
	ConnectionRequestUsername         string
	ConnectionRequestPassword         string
	CWMPRetryMinimumWaitInterval      uint32 // 0 means 5
	CWMPRetryIntervalMultiplier       uint32 // 0 means 2000
	DefaultActiveNotificationThrottle uint32
	ProvisioningCode                  string
}

// StdObjects is what the standard objects are built from.
type StdObjects struct {
	Info DeviceInfo
	ACS  ManagementDefaults
	// ConnectionRequestURL reports the connection request server's URL.
	ConnectionRequestURL func() string
	// Interfaces lists the IP interfaces; it is called while the tree is
	// locked and for every parameter read, so it should be cheap (cached).
	Interfaces func() []IPInterface
	// Boot is when the device booted (UpTime); Now is the clock.
	Boot time.Time
	Now  func() time.Time
}

// Paths of the ManagementServer parameters the client reads.
const (
	msPrefix         = "Device.ManagementServer."
	pURL             = msPrefix + "URL"
	pUsername        = msPrefix + "Username"
	pPassword        = msPrefix + "Password"
	pPeriodicEnable  = msPrefix + "PeriodicInformEnable"
	pPeriodicIntvl   = msPrefix + "PeriodicInformInterval"
	pPeriodicTime    = msPrefix + "PeriodicInformTime"
	pParameterKey    = msPrefix + "ParameterKey"
	pConnReqURL      = msPrefix + "ConnectionRequestURL"
	pConnReqUsername = msPrefix + "ConnectionRequestUsername"
	pConnReqPassword = msPrefix + "ConnectionRequestPassword"
	pRetryMin        = msPrefix + "CWMPRetryMinimumWaitInterval"
	pRetryMult       = msPrefix + "CWMPRetryIntervalMultiplier"
	pActiveThrottle  = msPrefix + "DefaultActiveNotificationThrottle"
	pEnableCWMP      = msPrefix + "EnableCWMP"
)

func rangeCheck(lo, hi uint64) func([]uint32, string) error {
	return func(_ []uint32, v string) error {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n < lo || n > hi {
			return fmt.Errorf("%s outside [%d, %d]", v, lo, hi)
		}
		return nil
	}
}

func checkACSURL(_ []uint32, v string) error {
	u, err := url.Parse(v)
	if err != nil {
		return fmt.Errorf("ACS URL %q: %w", v, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("ACS URL %q must be http(s)://host/...", v)
	}
	return nil
}

func constant(v string) func([]uint32) (string, error) {
	return func([]uint32) (string, error) { return v, nil }
}

// RegisterStandard registers Device.RootDataModelVersion,
// Device.DeviceInfo., Device.ManagementServer. and Device.IP.Interface.
// on t. Changes under Device.ManagementServer. go to onChange (may be
// nil), which runs with the tree locked and must only take note.
func RegisterStandard(t *Tree, so StdObjects, onChange Committer) error {
	info, ms := so.Info, so.ACS
	now := so.Now
	if now == nil {
		now = time.Now
	}
	boot := so.Boot
	if boot.IsZero() {
		boot = now()
	}
	retryMin := cmp0(ms.CWMPRetryMinimumWaitInterval, 5)
	retryMult := cmp0(ms.CWMPRetryIntervalMultiplier, 2000)
	interval := cmp0(ms.PeriodicInformInterval, 3600)
	ptime := unknownTime
	if !ms.PeriodicInformTime.IsZero() {
		ptime = ms.PeriodicInformTime
	}
	regs := []struct {
		path string
		p    Param
	}{
		{"Device.RootDataModelVersion", Param{Get: constant("2.15"), ForcedInform: true}},
		{"Device.DeviceInfo.Manufacturer", Param{Get: constant(info.Manufacturer)}},
		{"Device.DeviceInfo.ManufacturerOUI", Param{Get: constant(info.ManufacturerOUI)}},
		{"Device.DeviceInfo.ModelName", Param{Get: constant(info.ModelName)}},
		{"Device.DeviceInfo.Description", Param{Get: constant(info.Description)}},
		{"Device.DeviceInfo.ProductClass", Param{Get: constant(info.ProductClass)}},
		{"Device.DeviceInfo.SerialNumber", Param{Get: constant(info.SerialNumber)}},
		{"Device.DeviceInfo.HardwareVersion", Param{Get: constant(info.HardwareVersion), ForcedInform: true}},
		{"Device.DeviceInfo.SoftwareVersion", Param{Get: constant(info.SoftwareVersion), ForcedInform: true, ForceActive: true}},
		{"Device.DeviceInfo.ProvisioningCode", Param{Writable: true, Default: ms.ProvisioningCode, MaxLen: 64, ForcedInform: true}},
		{"Device.DeviceInfo.UpTime", Param{Type: TypeUnsignedInt, DenyActive: true, Get: func([]uint32) (string, error) {
			return strconv.FormatInt(int64(now().Sub(boot)/time.Second), 10), nil
		}}},
		{pEnableCWMP, Param{Type: TypeBoolean, Writable: true, Default: "true"}},
		{pURL, Param{Writable: true, Default: ms.URL, MaxLen: 256, Validate: checkACSURL}},
		{pUsername, Param{Writable: true, Default: ms.Username, MaxLen: 256}},
		{pPassword, Param{Writable: true, Default: ms.Password, MaxLen: 256, Secret: true}},
		{pPeriodicEnable, Param{Type: TypeBoolean, Writable: true, Default: strconv.FormatBool(ms.PeriodicInformEnable)}},
		{pPeriodicIntvl, Param{Type: TypeUnsignedInt, Writable: true, Default: strconv.FormatUint(uint64(interval), 10), Validate: rangeCheck(1, 1<<32-1)}},
		{pPeriodicTime, Param{Type: TypeDateTime, Writable: true, Default: formatTime(ptime)}},
		{pParameterKey, Param{ForcedInform: true, Get: func([]uint32) (string, error) { return t.paramKey, nil }}},
		{pConnReqURL, Param{ForcedInform: true, ForceActive: true, Get: func([]uint32) (string, error) {
			if so.ConnectionRequestURL == nil {
				return "", nil
			}
			return so.ConnectionRequestURL(), nil
		}}},
		{pConnReqUsername, Param{Writable: true, Default: ms.ConnectionRequestUsername, MaxLen: 256}},
		{pConnReqPassword, Param{Writable: true, Default: ms.ConnectionRequestPassword, MaxLen: 256, Secret: true}},
		{pRetryMin, Param{Type: TypeUnsignedInt, Writable: true, Default: strconv.FormatUint(uint64(retryMin), 10), Validate: rangeCheck(1, 65535)}},
		{pRetryMult, Param{Type: TypeUnsignedInt, Writable: true, Default: strconv.FormatUint(uint64(retryMult), 10), Validate: rangeCheck(1000, 65535)}},
		{pActiveThrottle, Param{Type: TypeUnsignedInt, Writable: true, Default: strconv.FormatUint(uint64(ms.DefaultActiveNotificationThrottle), 10)}},
		{msPrefix + "UpgradesManaged", Param{Type: TypeBoolean, Writable: true, Default: "false"}},
		{msPrefix + "SupportedConnReqMethods", Param{Get: constant("HTTP")}},
	}
	var errs []error
	for _, r := range regs {
		errs = append(errs, t.Register(r.path, r.p))
	}
	errs = append(errs, registerIP(t, so.Interfaces))
	if onChange != nil {
		t.AddCommitter(msPrefix, onChange)
	}
	return errors.Join(errs...)
}

func cmp0(v, dflt uint32) uint32 {
	if v == 0 {
		return dflt
	}
	return v
}

// registerIP adds Device.IP.Interface.{i}. with read-only IPv6 addresses
// and prefixes from list (nil: an empty table).
func registerIP(t *Tree, list func() []IPInterface) error {
	if list == nil {
		list = func() []IPInterface { return nil }
	}
	find := func(idx []uint32) (IPInterface, error) {
		for _, i := range list() {
			if i.Index == idx[0] {
				return i, nil
			}
		}
		return IPInterface{}, fmt.Errorf("interface %d is gone", idx[0])
	}
	field := func(f func(IPInterface) string) func([]uint32) (string, error) {
		return func(idx []uint32) (string, error) {
			i, err := find(idx)
			if err != nil {
				return "", err
			}
			return f(i), nil
		}
	}
	addrNums, prefixNums := newStableNumbers(), newStableNumbers()
	nth := func(pick func(IPInterface) []string, nums *stableNumbers) func([]uint32) (string, error) {
		return func(idx []uint32) (string, error) {
			i, err := find(idx)
			if err != nil {
				return "", err
			}
			for _, v := range pick(i) {
				if nums.number(i.Index, v) == idx[1] {
					return v, nil
				}
			}
			return "", fmt.Errorf("interface %d entry %d is gone", idx[0], idx[1])
		}
	}
	count := func(pick func(IPInterface) []string) func([]uint32) (string, error) {
		return field(func(i IPInterface) string { return strconv.Itoa(len(pick(i))) })
	}
	addrs := func(i IPInterface) []string { return i.IPv6Addresses }
	prefixes := func(i IPInterface) []string { return i.IPv6Prefixes }
	const base = "Device.IP.Interface.{i}."
	var errs []error
	errs = append(errs, t.Register("Device.IP.InterfaceNumberOfEntries", Param{Type: TypeUnsignedInt, Get: func([]uint32) (string, error) {
		return strconv.Itoa(len(list())), nil
	}}))
	errs = append(errs, t.RegisterObject(base, Object{Instances: func([]uint32) []uint32 {
		l := list()
		out := make([]uint32, 0, len(l))
		for _, i := range l {
			out = append(out, i.Index)
		}
		return out
	}}))
	for _, r := range []struct {
		name string
		p    Param
	}{
		{"Enable", Param{Type: TypeBoolean, Get: field(func(i IPInterface) string { return strconv.FormatBool(i.Enable) })}},
		{"Status", Param{Get: field(func(i IPInterface) string { return i.Status })}},
		{"Name", Param{Get: field(func(i IPInterface) string { return i.Name })}},
		{"IPv6Enable", Param{Type: TypeBoolean, Get: field(func(i IPInterface) string { return strconv.FormatBool(len(i.IPv6Addresses) > 0) })}},
		{"IPv6AddressNumberOfEntries", Param{Type: TypeUnsignedInt, Get: count(addrs)}},
		{"IPv6PrefixNumberOfEntries", Param{Type: TypeUnsignedInt, Get: count(prefixes)}},
	} {
		errs = append(errs, t.Register(base+r.name, r.p))
	}
	entries := func(pick func(IPInterface) []string, nums *stableNumbers) func([]uint32) []uint32 {
		return func(idx []uint32) []uint32 {
			i, err := find(idx)
			if err != nil {
				return nil
			}
			return nums.sync(i.Index, pick(i))
		}
	}
	errs = append(errs,
		t.RegisterObject(base+"IPv6Address.{i}.", Object{Instances: entries(addrs, addrNums)}),
		t.Register(base+"IPv6Address.{i}.IPAddress", Param{Get: nth(addrs, addrNums)}),
		t.Register(base+"IPv6Address.{i}.Status", Param{Get: constant("Enabled")}),
		t.RegisterObject(base+"IPv6Prefix.{i}.", Object{Instances: entries(prefixes, prefixNums)}),
		t.Register(base+"IPv6Prefix.{i}.Prefix", Param{Get: nth(prefixes, prefixNums)}),
		t.Register(base+"IPv6Prefix.{i}.Status", Param{Get: constant("Enabled")}),
	)
	return errors.Join(errs...)
}

// stableNumbers gives the entries of a caller-owned list (the addresses
// of an interface) instance numbers that stay with the entry while it
// exists and are not reused within the process, as TR-181 asks of
// instance numbers.
type stableNumbers struct {
	mu   sync.Mutex
	nums map[uint32]map[string]uint32 // interface -> entry -> number
	next map[uint32]uint32
}

func newStableNumbers() *stableNumbers {
	return &stableNumbers{nums: map[uint32]map[string]uint32{}, next: map[uint32]uint32{}}
}

// sync numbers the current entries of interface owner, forgetting the
// gone ones, and returns the numbers in ascending order.
func (s *stableNumbers) sync(owner uint32, entries []string) []uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.nums[owner]
	if m == nil {
		m = map[string]uint32{}
		s.nums[owner] = m
	}
	present := make(map[string]bool, len(entries))
	out := make([]uint32, 0, len(entries))
	for _, e := range entries {
		if present[e] {
			continue
		}
		present[e] = true
		n, ok := m[e]
		if !ok {
			s.next[owner]++
			n = s.next[owner]
			m[e] = n
		}
		out = append(out, n)
	}
	for e := range m {
		if !present[e] {
			delete(m, e)
		}
	}
	slices.Sort(out)
	return out
}

// number is the number of an entry (0 if it was never listed).
func (s *stableNumbers) number(owner uint32, entry string) uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nums[owner][entry]
}

// managementServer is the client's view of Device.ManagementServer.
type managementServer struct {
	EnableCWMP                  bool
	URL, Username, Password     string
	PeriodicEnable              bool
	PeriodicInterval            time.Duration
	PeriodicTime                time.Time // zero: unknown
	ConnReqUsername, ConnReqPwd string
	RetryMin, RetryMult         uint32
	ActiveThrottle              time.Duration
}

// readManagementServer reads the values the session engine needs,
// secrets included.
func readManagementServer(t *Tree) managementServer {
	t.mu.Lock()
	defer t.mu.Unlock()
	get := func(n string) string { v, _ := t.valueOf(n); return v }
	u := func(n string, dflt uint32) uint32 {
		v, err := strconv.ParseUint(get(n), 10, 32)
		if err != nil || v == 0 {
			return dflt
		}
		return uint32(v)
	}
	ms := managementServer{
		EnableCWMP: get(pEnableCWMP) != "false",
		URL:        strings.TrimSpace(get(pURL)), Username: get(pUsername), Password: get(pPassword),
		PeriodicEnable:   get(pPeriodicEnable) == "true",
		PeriodicInterval: time.Duration(u(pPeriodicIntvl, 3600)) * time.Second,
		ConnReqUsername:  get(pConnReqUsername), ConnReqPwd: get(pConnReqPassword),
		RetryMin: u(pRetryMin, 5), RetryMult: u(pRetryMult, 2000),
	}
	if n, err := strconv.ParseUint(get(pActiveThrottle), 10, 32); err == nil {
		ms.ActiveThrottle = time.Duration(n) * time.Second
	}
	if pt, err := parseDateTime(get(pPeriodicTime)); err == nil && pt.After(unknownTime) {
		ms.PeriodicTime = pt
	}
	return ms
}

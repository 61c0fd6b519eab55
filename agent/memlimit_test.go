package agent

import "testing"

func TestParseByteSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want ByteSize
		ok   bool
	}{
		{"48MiB", 48 << 20, true},
		{"64M", 64e6, true},
		{" 1 GiB ", 1 << 30, true},
		{"1048576", 1 << 20, true},
		{"512B", 512, true},
		{"0", 0, true}, // SetDefaults turns 0 into the default
		{"-1MiB", 0, false},
		{"lots", 0, false},
		{"1.5GiB", 0, false},
		{"99999999999GiB", 0, false},
	} {
		got, err := ParseByteSize(tc.in)
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestMemoryLimitConfig(t *testing.T) {
	c, err := ParseConfig([]byte("memory_limit: 32MiB\nwan: {interface: wan0}\nsrv6: {locator_len: 48}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.MemoryLimit != 32<<20 {
		t.Errorf("memory_limit = %d, want 32 MiB", c.MemoryLimit)
	}
	c, err = ParseConfig([]byte("wan: {interface: wan0}\nsrv6: {locator_len: 48}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.MemoryLimit != DefaultMemoryLimit {
		t.Errorf("default memory_limit = %d, want %d", c.MemoryLimit, DefaultMemoryLimit)
	}
	if _, err := ParseConfig([]byte("memory_limit: huge\nwan: {interface: wan0}\nsrv6: {locator_len: 48}\n")); err == nil {
		t.Error("memory_limit: huge accepted")
	}
}

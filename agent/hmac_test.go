package agent

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/srv6cpe/srv6cpe/dataplane"
)

const hmacSecret = "0123456789abcdef0123456789abcdef"

func TestValidateHMAC(t *testing.T) {
	base := "wan: {interface: wan0}\nsrv6:\n  locator_len: 48\n  hmac:\n"
	tests := []struct {
		name string
		hmac string // the body of srv6.hmac, indented 4
		want string // substring of the error, "" = valid
	}{
		{"empty section", "    {}", ""},
		{"inline secret", "    keys: [{key_id: 7, secret: " + hmacSecret + "}]\n    key_id: 7\n    require: true", ""},
		{"sha1 from a file", "    keys: [{key_id: 65535, algorithm: sha1, secret_file: /etc/k}]", ""},
		{"key id 0", "    keys: [{key_id: 0, secret: " + hmacSecret + "}]", "srv6.hmac.keys[0].key_id: 0 is outside 1..65535"},
		{"key id outside the owned range", "    keys: [{key_id: 70000, secret: " + hmacSecret + "}]", "srv6.hmac.keys[0].key_id: 70000 is outside"},
		{"key id twice", "    keys: [{key_id: 2, secret: " + hmacSecret + "}, {key_id: 2, secret: " + hmacSecret + "}]", "srv6.hmac.keys[1].key_id: 2 is listed twice"},
		{"unknown algorithm", "    keys: [{key_id: 2, algorithm: md5, secret: " + hmacSecret + "}]", `srv6.hmac.keys[0].algorithm: HMAC algorithm "md5"`},
		{"no secret", "    keys: [{key_id: 2}]", "srv6.hmac.keys[0]: set exactly one of secret, secret_file"},
		{"both secrets", "    keys: [{key_id: 2, secret: " + hmacSecret + ", secret_file: /etc/k}]", "set exactly one of"},
		{"short secret", "    keys: [{key_id: 2, secret: short}]", "srv6.hmac.keys[0].secret: 5 bytes, want 20..64"},
		{"relative file", "    keys: [{key_id: 2, secret_file: k}]", `srv6.hmac.keys[0].secret_file: "k" is not an absolute path`},
		{"signing key missing", "    keys: [{key_id: 2, secret: " + hmacSecret + "}]\n    key_id: 3", "srv6.hmac.key_id: 3 is not in srv6.hmac.keys"},
		{"require without keys", "    require: true", "srv6.hmac.require: no srv6.hmac.keys"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(base + tc.hmac + "\n"))
			if tc.want == "" && err != nil {
				t.Fatalf("unexpected error %v", err)
			}
			if tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), hmacSecret) {
				t.Fatalf("secret in the error: %v", err)
			}
		})
	}
}

func TestHMACKeyConfigNeverPrintsSecret(t *testing.T) {
	k := HMACKeyConfig{KeyID: 7, Algorithm: "sha256", Secret: hmacSecret}
	c := HMACConfig{Keys: []HMACKeyConfig{k}}
	if s := fmt.Sprintf("%v %+v %#v %v %+v", k, k, k, c, c); strings.Contains(s, hmacSecret) {
		t.Fatalf("secret printed: %s", s)
	}
}

func TestLoadConfigHMACSecretFile(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "hmac-7.key")
	if err := os.WriteFile(key, []byte(hmacSecret), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "srv6cpe.yaml")
	write := func(secretFile string) {
		doc := "wan: {interface: wan0}\nsrv6:\n  locator_len: 48\n  hmac:\n    keys: [{key_id: 7, secret_file: " + secretFile + "}]\n    key_id: 7\n"
		if err := os.WriteFile(cfgPath, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(key)
	c, err := LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.SRv6.HMAC.Keys[0].secret(); !bytes.Equal(got, []byte(hmacSecret)) {
		t.Fatalf("secret %q", got)
	}
	// A missing file and a short one are named, their content never.
	write(filepath.Join(dir, "nope"))
	if _, err := LoadConfig(cfgPath); err == nil || !strings.Contains(err.Error(), "srv6.hmac.keys[0].secret_file "+filepath.Join(dir, "nope")) {
		t.Fatalf("missing file: %v", err)
	}
	if err := os.WriteFile(key, []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	write(key)
	if _, err := LoadConfig(cfgPath); err == nil || !strings.Contains(err.Error(), "5 bytes, want 20..64") || strings.Contains(err.Error(), "short") {
		t.Fatalf("short file: %v", err)
	}
}

func TestDesiredStateHMAC(t *testing.T) {
	doc := strings.Replace(vpnConfig, "srv6: {locator_len: 48, extension: 0x5}",
		"srv6:\n  locator_len: 48\n  extension: 0x5\n  hmac:\n"+
			"    keys: [{key_id: 7, secret: "+hmacSecret+"}, {key_id: 9, algorithm: sha1, secret: "+hmacSecret+"}]\n"+
			"    key_id: 7\n    require: true", 1)
	cfg := mustConfig(t, doc)
	d, err := derive(cfg, p("2001:db8:1200::/40"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := desiredState(cfg, d, withVRF)
	if err != nil {
		t.Fatal(err)
	}
	if got.HMAC == nil || !got.HMAC.Require || len(got.HMAC.Keys) != 2 ||
		got.HMAC.Keys[0].ID != 7 || got.HMAC.Keys[0].Algorithm != dataplane.HMACSHA256 ||
		got.HMAC.Keys[1].Algorithm != dataplane.HMACSHA1 || string(got.HMAC.Keys[0].Secret) != hmacSecret {
		t.Fatalf("HMAC state %+v", got.HMAC)
	}
	if len(got.Encaps) == 0 {
		t.Fatal("no encap routes")
	}
	for _, e := range got.Encaps {
		if e.HMACKeyID != 7 {
			t.Fatalf("encap %s signs with key %d, want 7", e.Prefix, e.HMACKeyID)
		}
	}
	// Without the section the kernel's HMAC state is left alone.
	plain, err := desiredState(mustConfig(t, vpnConfig), d, withVRF)
	if err != nil {
		t.Fatal(err)
	}
	if plain.HMAC != nil || plain.Encaps[0].HMACKeyID != 0 {
		t.Fatalf("HMAC without a section: %+v %+v", plain.HMAC, plain.Encaps[0])
	}
}

// Encap routes kept from before a restart carry the key they had in the
// kernel; they are signed with the configured key instead, so that a key
// taken out of the config cannot make every apply fail until they go.
func TestStaleRoutesTakeTheCurrentKey(t *testing.T) {
	a := &Agent{cfg: Config{SRv6: SRv6Config{HMAC: &HMACConfig{KeyID: 7}}}}
	a.bgp.stale = []dataplane.EncapRoute{{Prefix: netip.MustParsePrefix("192.168.9.0/24"), HMACKeyID: 3}}
	got := a.withStale(nil)
	if len(got) != 1 || got[0].HMACKeyID != 7 {
		t.Errorf("stale route after withStale: %+v, want key 7", got)
	}
	a.cfg.SRv6.HMAC = nil
	if got := a.withStale(nil); got[0].HMACKeyID != 0 {
		t.Errorf("stale route without hmac config: key %d, want 0", got[0].HMACKeyID)
	}
}

package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/srv6cpe/srv6cpe/dataplane"
)

// SRH HMAC (RFC 8754 §2.1.2), the srv6.hmac section:
//
//	srv6:
//	  hmac:
//	    keys:                 # the namespace's HMAC key table
//	      - key_id: 7         # 1..65535: the ids the dataplane owns
//	        algorithm: sha256 # or sha1
//	        secret_file: /etc/srv6cpe/hmac-7.key   # or secret: "..."
//	    key_id: 7             # every encap route we install signs with it (0 = none)
//	    require: true         # WAN seg6_require_hmac=1: SRH packets without a valid HMAC are dropped
//
// No section leaves the kernel's HMAC keys and seg6_require_hmac alone; an
// empty section (hmac: {}) removes our keys and sets seg6_require_hmac=0.
// Secrets are never logged and never reported in status.json.
//
// The kernel gap: seg6_require_hmac only judges packets that carry an SRH.
// An IPv6-in-IPv6 packet without one (H.Encaps.Red with one segment, or
// anything an attacker crafts) reaches End.DX4/DT4/DT6/DT46 unchecked, so
// HMAC is not anti-spoofing on its own: the SID filter (sidfilter.go) is.

// HMACConfig is the srv6.hmac section.
type HMACConfig struct {
	Keys    []HMACKeyConfig `yaml:"keys"`
	KeyID   uint32          `yaml:"key_id"`
	Require bool            `yaml:"require"`
}

// HMACKeyConfig is one key of srv6.hmac.keys: the secret inline or in a
// file (read by LoadConfig, so a reload picks up a rotated file).
type HMACKeyConfig struct {
	KeyID      uint32 `yaml:"key_id"`
	Algorithm  string `yaml:"algorithm"`
	Secret     string `yaml:"secret"`
	SecretFile string `yaml:"secret_file"`
	fileSecret []byte
}

// String never shows the secret.
func (k HMACKeyConfig) String() string {
	return fmt.Sprintf("hmac key %d %s", k.KeyID, k.Algorithm)
}

// GoString keeps %#v from printing the secret too.
func (k HMACKeyConfig) GoString() string { return k.String() }

func (k HMACKeyConfig) secret() []byte {
	if k.SecretFile != "" {
		return k.fileSecret
	}
	return []byte(k.Secret)
}

// validateHMAC checks srv6.hmac, naming the bad value (never a secret).
func (c *Config) validateHMAC() []error {
	h := c.SRv6.HMAC
	if h == nil {
		return nil
	}
	var errs []error
	bad := func(f string, a ...any) { errs = append(errs, fmt.Errorf(f, a...)) }
	ids := make(map[uint32]bool)
	for i, k := range h.Keys {
		at := fmt.Sprintf("srv6.hmac.keys[%d]", i)
		switch {
		case k.KeyID < dataplane.HMACKeyIDMin || k.KeyID > dataplane.HMACKeyIDMax:
			bad("%s.key_id: %d is outside %d..%d", at, k.KeyID, dataplane.HMACKeyIDMin, dataplane.HMACKeyIDMax)
		case ids[k.KeyID]:
			bad("%s.key_id: %d is listed twice", at, k.KeyID)
		}
		ids[k.KeyID] = true
		if _, err := dataplane.ParseHMACAlgorithm(k.Algorithm); err != nil {
			bad("%s.algorithm: %w", at, err)
		}
		switch {
		case (k.Secret == "") == (k.SecretFile == ""):
			bad("%s: set exactly one of secret, secret_file", at)
		case k.SecretFile != "" && !filepath.IsAbs(k.SecretFile):
			bad("%s.secret_file: %q is not an absolute path", at, k.SecretFile)
		case k.Secret != "":
			if err := secretLen(len(k.Secret)); err != nil {
				bad("%s.secret: %w", at, err)
			}
		}
	}
	if h.KeyID != 0 && !ids[h.KeyID] {
		bad("srv6.hmac.key_id: %d is not in srv6.hmac.keys", h.KeyID)
	}
	if h.Require && len(h.Keys) == 0 {
		bad("srv6.hmac.require: no srv6.hmac.keys to check HMACs with")
	}
	if h.Require && c.WAN.Interface == "" {
		bad("srv6.hmac.require: needs wan.interface")
	}
	return errs
}

func secretLen(n int) error {
	if n < dataplane.HMACMinSecretLen || n > 64 {
		return fmt.Errorf("%d bytes, want %d..64", n, dataplane.HMACMinSecretLen)
	}
	return nil
}

// loadHMACSecrets reads the secret files of srv6.hmac.keys. A file holds
// the secret as is (no trailing newline is stripped: it would be part of
// the key on the peer too if written the same way).
func (c *Config) loadHMACSecrets() error {
	if c.SRv6.HMAC == nil {
		return nil
	}
	var errs []error
	for i := range c.SRv6.HMAC.Keys {
		k := &c.SRv6.HMAC.Keys[i]
		if k.SecretFile == "" {
			continue
		}
		b, err := os.ReadFile(k.SecretFile)
		if err == nil {
			err = secretLen(len(b))
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("srv6.hmac.keys[%d].secret_file %s: %w", i, k.SecretFile, err))
			continue
		}
		k.fileSecret = b
	}
	return errors.Join(errs...)
}

// withHMAC adds srv6.hmac to a desired state: the key table, the WAN
// setting, and the signing key on every encap route.
func withHMAC(cfg Config, out dataplane.Desired) dataplane.Desired {
	h := cfg.SRv6.HMAC
	if h == nil {
		return out
	}
	st := &dataplane.HMACState{Require: h.Require}
	for _, k := range h.Keys {
		alg, _ := dataplane.ParseHMACAlgorithm(k.Algorithm) // validated
		st.Keys = append(st.Keys, dataplane.HMACKey{ID: k.KeyID, Algorithm: alg, Secret: k.secret()})
	}
	out.HMAC = st
	if h.KeyID != 0 {
		encaps := make([]dataplane.EncapRoute, len(out.Encaps))
		for i, e := range out.Encaps {
			e.HMACKeyID = h.KeyID
			encaps[i] = e
		}
		out.Encaps = encaps
	}
	return out
}

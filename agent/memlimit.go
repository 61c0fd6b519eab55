package agent

import (
	"fmt"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// DefaultMemoryLimit is the Go runtime's soft memory target when neither
// memory_limit nor GOMEMLIMIT sets one: the GC then hands memory back soon
// after a burst (a full BGP table arriving) instead of keeping up to twice
// the live heap. With 10,000 VPNv4 routes the receiving daemon has about
// 18 MiB live; at 32 MiB it spends seconds in GC (make bench), at 48 MiB not.
const DefaultMemoryLimit ByteSize = 48 << 20

// ByteSize is a size in bytes; YAML accepts a number of bytes or a number
// with a unit: KiB, MiB, GiB (powers of 1024) or K, M, G (powers of 1000).
type ByteSize int64

var byteUnits = []struct {
	suffix string
	scale  int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {"B", 1},
}

// ParseByteSize reads "48MiB", "64M", "1048576".
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.TrimSpace(s)
	scale := int64(1)
	for _, u := range byteUnits {
		if n, ok := strings.CutSuffix(t, u.suffix); ok {
			t, scale = strings.TrimSpace(n), u.scale
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/scale {
		return 0, fmt.Errorf("%q is not a size (e.g. 48MiB, 64M, 1048576)", s)
	}
	return ByteSize(n * scale), nil
}

// UnmarshalYAML parses the scalar with ParseByteSize.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: a size must be a scalar, got a %s", n.Line, kindName(n.Kind))
	}
	v, err := ParseByteSize(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*b = v
	return nil
}

package endtsf

import (
	"errors"
	"fmt"
	"net"

	"go.uber.org/zap"
)

// ErrUnsupported wraps every reason this node cannot do End.TSF.
var ErrUnsupported = errors.New("end.tsf unsupported")

// Probe tells whether End.TSF can run here: it loads the stamping program
// (the verifier must accept it: eBPF, bpf_ktime_get_tai_ns from Linux 6.1,
// CAP_BPF + CAP_NET_ADMIN) and attaches it for a moment at tcx ingress of
// the loopback interface (tcx from Linux 6.6), with no SID in its map, so
// no packet is touched. A nil error means End.TSF is available; otherwise
// the caller falls back to plain loopback (the SID stays a plain End.DX6,
// senders get round-trip delays only) and reports the error, which wraps
// ErrUnsupported and says why.
func Probe() error {
	s, err := New(zap.NewNop())
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnsupported, err)
	}
	defer s.Close()
	lo, err := loopbackName()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnsupported, err)
	}
	if err := s.SetInterfaces([]string{lo}); err != nil {
		return fmt.Errorf("%w: %w", ErrUnsupported, err)
	}
	return nil
}

func loopbackName() (string, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return "", fmt.Errorf("list interfaces: %w", err)
	}
	for _, i := range ifs {
		if i.Flags&net.FlagLoopback != 0 {
			return i.Name, nil
		}
	}
	return "", errors.New("no loopback interface to probe tcx on")
}

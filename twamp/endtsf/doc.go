// Package endtsf emulates the End.TSF (timestamp and forward) behaviour on
// a Linux far node: the node that ends an enhanced-loopback STAMP probe's
// segment list writes the receive timestamp T2 into the probe, so the
// Session-Sender gets one-way forward (T2−T1) and backward (T4−T2) delays
// from its own decode (twamp.SenderConfig.EndTSF).
//
// Why not a seg6local End.BPF program: BPF_PROG_TYPE_LWT_SEG6LOCAL has
// read-only packet access (the verifier refuses direct packet writes for
// LWT_IN/OUT/SEG6LOCAL) and neither bpf_skb_store_bytes nor
// bpf_l4_csum_replace; its one write helper, bpf_lwt_seg6_store_bytes,
// only reaches the flags, tag and TLVs of the outermost SRH, which the
// decapsulation at the last SID throws away. The STAMP payload cannot be
// written from End.BPF (TestEndBPFCannotWritePayload shows the verifier's
// refusal). LWT_XMIT could write, but only on the output of one route,
// i.e. for all traffic to one destination.
//
// So the stamping is a tc program (BPF_PROG_TYPE_SCHED_CLS, which has
// bpf_skb_store_bytes and bpf_l4_csum_replace) attached with tcx at
// ingress of the node's links; it touches only packets addressed to an
// End.TSF SID at their last segment (see program.go), and the SID itself
// is a plain seg6local End.DX6 route that the dataplane package already
// installs. The program is assembled in Go (cilium/ebpf/asm), no clang.
//
// Clock: T2 comes from bpf_ktime_get_tai_ns (CLOCK_TAI, Linux 6.1+) plus a
// correction the loader keeps in a map (ClockCorrection), so T2 follows
// the twamp package's PTP convention even when no time daemon has set the
// kernel's TAI offset. Kernels without the helper fail Probe and the node
// falls back to plain loopback.
//
// Use: Probe once; New; SetSIDs and SetInterfaces whenever the wanted
// state changes (level-triggered); Run(ctx) keeps the clock correction
// current; Close.
package endtsf

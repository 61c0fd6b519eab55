package agent

import (
	"time"

	"github.com/srv6cpe/srv6cpe/srv6"
)

// PolicyConfig is one parent SRv6 policy the agent runs
// (draft-yang-srv6ops-policy-selector): the srv6.Policy itself (inline:
// name, color, endpoint, constituents, selectors, services) plus what the
// agent needs to measure its constituents and to steer flows onto them.
type PolicyConfig struct {
	srv6.Policy `yaml:",inline"`
	// VPN names the services: entry (VPN instance) whose routes learned
	// from Endpoint the policy steers.
	VPN string `yaml:"vpn"`
	// ProbeInterval is the STAMP loopback probe interval of every
	// constituent segment list.
	ProbeInterval time.Duration `yaml:"probe_interval"`
	// EndTSF says the last SID of every constituent segment list is an
	// End.TSF SID of the far node (srv6.end_tsf there): its probes carry
	// the far node's receive timestamp, so one-way forward and backward
	// delays are measured too (twamp.SenderConfig.EndTSF).
	EndTSF bool `yaml:"end_tsf"`
	// Flows classify traffic into the policy's services.
	Flows []FlowConfig `yaml:"flows"`
}

// FlowConfig maps flows to a service of the policy. Unset fields match
// anything; a flow becomes one policy routing rule per address family it
// can match.
type FlowConfig struct {
	// Service is a name in the policy's services.
	Service string `yaml:"service"`
	// DSCP is 0..63.
	DSCP *uint8 `yaml:"dscp"`
	// Protocol is udp, tcp, icmp, ipv6-icmp, sctp or a number.
	Protocol string `yaml:"protocol"`
	Src      string `yaml:"src"`
	Dst      string `yaml:"dst"`
	// SrcPorts / DstPorts are "5060" or "10000-20000".
	SrcPorts string `yaml:"src_ports"`
	DstPorts string `yaml:"dst_ports"`
	// FwMark is "0x10" or "0x10/0xff": flows marked by the operator's
	// firewall (nftables), the way to classify by DSCP on kernels whose
	// rules cannot match it.
	FwMark string `yaml:"fwmark"`
}

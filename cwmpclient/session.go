package cwmpclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
)

// conn is one session's HTTP exchange with the ACS (transport.go's
// sessionConn): an empty body is the empty POST.
type conn interface {
	Post(ctx context.Context, body []byte) (status int, respBody []byte, err error)
	Close()
}

// cpeRequest is a request the CPE sends after the InformResponse; done
// gets the ACS's answer (a response message or a *Fault).
type cpeRequest struct {
	msg  Message
	done func(resp Message)
	// answers, when set, tells whether an ACS message answers msg (vendor
	// RPCs whose response is not named msg+"Response"); nil uses the
	// standard naming.
	answers func(resp Message) bool
}

// sessionPlan is what one session carries.
type sessionPlan struct {
	ns       string // CWMP namespace of the Inform
	inform   Inform
	requests []cpeRequest
	// informed runs once the InformResponse arrived (events delivered).
	informed func()
	// informResponse, when set, is handed the InformResponse after informed.
	informResponse func(InformResponse)
	// exchangeTimeout bounds one POST and its answer (0: only ctx).
	exchangeTimeout time.Duration
}

// Bounds of one session: an ACS that never ends it, or keeps sending
// garbage, cannot hold the CPE forever.
const (
	maxExchanges    = 100000
	maxBadEnvelopes = 3
)

// ErrACSFault reports an ACS fault to the Inform (e.g. 8005 retry).
var ErrACSFault = errors.New("acs answered with a fault")

// normalizeNS maps a namespace the ACS used onto one this client emits
// (1-3 and 1-4 share the 1-2 namespace).
func normalizeNS(ns string) string {
	switch ns {
	case NS10, NS11, NS12:
		return ns
	case "":
		return ""
	}
	if strings.HasPrefix(ns, "urn:dslforum-org:cwmp-1-") {
		return NS12
	}
	return ""
}

// sessionIDs numbers the cwmp:ID of CPE-originated requests.
type sessionIDs struct{ n uint64 }

func (s *sessionIDs) next() string { s.n++; return "cpe-" + strconv.FormatUint(s.n, 10) }

// runSession runs one CWMP session on c (TR-069 §3.7.1): Inform, then the
// CPE's requests after the InformResponse (unless the ACS holds them),
// then the empty POST, answering every ACS request with d until the ACS
// ends the session with an empty response (HTTP 204 or an empty 200).
// It returns nil only for a session that ended that way.
func runSession(ctx context.Context, c conn, d *Dispatcher, plan sessionPlan, log *zap.Logger) error {
	var ids sessionIDs
	ns := plan.ns
	body, err := Encode(ns, ids.next(), plan.inform)
	if err != nil {
		return fmt.Errorf("encode inform: %w", err)
	}
	status, resp, err := post(ctx, c, body, plan.exchangeTimeout)
	if err != nil {
		return fmt.Errorf("post inform: %w", err)
	}
	if status != http.StatusOK && !soapFaultStatus(status, resp) {
		return fmt.Errorf("inform: acs answered HTTP %d", status)
	}
	env, err := Decode(resp)
	if err != nil {
		return fmt.Errorf("inform response (HTTP %d): %w", status, err)
	}
	ir, ok := env.Msg.(InformResponse)
	switch m := env.Msg.(type) {
	case InformResponse:
	case *Fault:
		return fmt.Errorf("%w to inform: %d %s", ErrACSFault, m.Code, m.String)
	default:
		return fmt.Errorf("inform: acs answered %T, want InformResponse", env.Msg)
	}
	if n := normalizeNS(env.NS); n != "" {
		ns = n // talk the ACS's version for the rest of the session
	}
	if plan.informed != nil {
		plan.informed()
	}
	if ok && plan.informResponse != nil {
		plan.informResponse(ir)
	}
	hold := env.HoldRequests
	queue := plan.requests
	var awaiting *cpeRequest
	var out []byte // next body to POST; nil picks the next request or the empty POST
	bad := 0
	// cpeDone: the CPE has sent its empty POST (no more requests, or the
	// ACS holds them); from then on an empty ACS answer ends the session
	// (TR-069 §3.7.1.4).
	cpeDone := false
	for range maxExchanges {
		if err := ctx.Err(); err != nil {
			return err
		}
		emptyPost := false
		if out == nil {
			if !hold && len(queue) > 0 {
				r := queue[0]
				queue = queue[1:]
				if out, err = Encode(ns, ids.next(), r.msg); err != nil {
					log.Warn("cpe request dropped: cannot encode", zap.String("method", r.msg.MethodName()), zap.Error(err))
					out = nil
					continue
				}
				awaiting = &r
			} else {
				emptyPost = true
				cpeDone = true
			}
		}
		status, resp, err := post(ctx, c, out, plan.exchangeTimeout)
		out = nil
		if err != nil {
			return fmt.Errorf("post: %w", err)
		}
		if status == http.StatusNoContent || (status == http.StatusOK && len(strings.TrimSpace(string(resp))) == 0) {
			hold = false // HoldRequests lasts for the envelope that carries it
			if emptyPost || (cpeDone && awaiting == nil) {
				return nil
			}
			// An empty answer to one of our requests: it stays
			// unacknowledged (retried next session).
			awaiting = nil
			continue
		}
		if status != http.StatusOK && !soapFaultStatus(status, resp) {
			return fmt.Errorf("acs answered HTTP %d", status)
		}
		env, derr := Decode(resp)
		if env != nil {
			hold = env.HoldRequests
			if n := normalizeNS(env.NS); n != "" {
				ns = n
			}
		}
		if derr != nil {
			var mu *MustUnderstandError
			var f *Fault
			switch {
			case errors.As(derr, &mu):
				f = &Fault{Code: FaultInvalidArguments, String: mu.Error(), SOAPCode: "soap-env:MustUnderstand"}
			case errors.As(derr, &f):
			default:
				if bad++; bad >= maxBadEnvelopes {
					return fmt.Errorf("acs sent %d malformed envelopes, last: %w", bad, derr)
				}
				log.Warn("malformed envelope from acs", zap.Error(derr))
				f = NewFault(FaultInvalidArguments, "malformed envelope: %v", derr)
			}
			id := ""
			if env != nil {
				id = env.ID
			}
			if out, err = Encode(ns, id, f); err != nil {
				return fmt.Errorf("encode fault: %w", err)
			}
			continue
		}
		bad = 0
		if awaiting != nil {
			match := isResponseTo(awaiting.msg, env.Msg)
			if awaiting.answers != nil {
				match = awaiting.answers(env.Msg)
			}
			if match {
				if awaiting.done != nil {
					awaiting.done(env.Msg)
				}
				awaiting = nil
				continue
			}
			// The ACS sent a request instead of answering ours: ours stays
			// unacknowledged (retried next session) and we serve the ACS.
			awaiting = nil
		}
		if env.Msg == nil {
			continue
		}
		switch env.Msg.(type) {
		case InformResponse, TransferCompleteResponse, AutonomousTransferCompleteResponse, GetRPCMethodsResponse, *Fault:
			// A stray response: nothing to answer.
			continue
		}
		answer := d.Dispatch(ctx, env.Msg)
		if f, ok := answer.(*Fault); ok {
			log.Info("rpc fault", zap.String("method", env.Msg.MethodName()), zap.Int("code", f.Code), zap.String("reason", f.String))
		} else {
			log.Debug("rpc", zap.String("method", env.Msg.MethodName()))
		}
		if out, err = Encode(ns, env.ID, answer); err != nil {
			out, _ = Encode(ns, env.ID, NewFault(FaultInternal, "cannot encode %s: %v", answer.MethodName(), err))
		}
	}
	return fmt.Errorf("session exceeded %d exchanges", maxExchanges)
}

// soapFaultStatus: SOAP 1.1 carries faults with HTTP 500; such an answer
// is read like a 200.
func soapFaultStatus(status int, body []byte) bool {
	return status == http.StatusInternalServerError && len(body) > 0
}

// post sends one message, bounded by timeout so a silent ACS cannot hold
// the session until the overall session deadline.
func post(ctx context.Context, c conn, body []byte, timeout time.Duration) (int, []byte, error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	return c.Post(ctx, body)
}

// isResponseTo matches an ACS message with the CPE request it answers.
func isResponseTo(req, resp Message) bool {
	if _, ok := resp.(*Fault); ok {
		return true
	}
	return resp != nil && resp.MethodName() == req.MethodName()+"Response"
}

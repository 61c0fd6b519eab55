package cwmpclient

import (
	"maps"
	"testing"
	"time"

	"github.com/srv6cpe/srv6cpe/internal/cwmpschema"
)

// Deps.OnInformResponse sees what an SD-WAN controller adds to its
// InformResponse (Q.Suppl.79 §8.1 ConnectionStatus), and nil from a plain one.
func TestOnInformResponse(t *testing.T) {
	cwmpschema.Tool(t)
	for _, tc := range []struct {
		name string
		raw  []string
		want map[string]string
	}{
		{"plain", nil, nil},
		{"connection status", []string{wrap(NS12, "", `<cwmp:InformResponse><MaxEnvelopes>1</MaxEnvelopes><ConnectionStatus>Registered</ConnectionStatus><Nested><X>1</X></Nested></cwmp:InformResponse>`)},
			map[string]string{"ConnectionStatus": "Registered"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := make(chan map[string]string, 4)
			acs := &fakeACS{t: t, raw: tc.raw}
			startClient(t, newMemStore(), acs, testConfig(), Deps{OnInformResponse: func(extra map[string]string) { got <- extra }})
			select {
			case extra := <-got:
				if !maps.Equal(extra, tc.want) || (tc.want == nil) != (extra == nil) {
					t.Errorf("OnInformResponse got %v, want %v", extra, tc.want)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("OnInformResponse not called within 5s")
			}
		})
	}
}

package server_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"k8s.io/client-go/rest"

	"github.com/trellis-project/trellis/server"
	"github.com/trellis-project/trellis/trellistest"
)

// TestInFlightLimitAnswers429 saturates a server allowed one mutating
// request at a time, with API Priority and Fairness off: the excess gets
// 429 with Retry-After.
func TestInFlightLimitAnswers429(t *testing.T) {
	tokens := filepath.Join(t.TempDir(), "tokens.csv")
	os.WriteFile(tokens, []byte("busy-token,busy,1002\n"), 0o600)
	admin := trellistest.Start(t, trellistest.WithConfig(func(c *server.Config) {
		c.MaxMutatingRequestsInFlight = 1
		c.DisablePriorityAndFairness = true
		c.TokenAuthFile = tokens
	}))
	// system:masters is exempt from the limits, so a plain user saturates.
	cfg := rest.AnonymousClientConfig(admin)
	cfg.BearerToken = "busy-token"
	transport, err := rest.TransportFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: transport}
	var mu sync.Mutex
	codes := map[int]int{}
	retryAfter := ""
	var wg sync.WaitGroup
	for g := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 5 {
				body := fmt.Sprintf(`{"metadata":{"name":"c-%d-%d"}}`, g, i)
				req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, cfg.Host+"/api/v1/namespaces/default/configmaps", strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				mu.Lock()
				codes[resp.StatusCode]++
				if resp.StatusCode == http.StatusTooManyRequests {
					retryAfter = resp.Header.Get("Retry-After")
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if codes[http.StatusTooManyRequests] == 0 || codes[http.StatusCreated] == 0 {
		t.Fatalf("status codes %v: want both 201s and 429s with one mutating slot", codes)
	}
	if retryAfter != "1" {
		t.Errorf("Retry-After = %q, want 1", retryAfter)
	}
}

package engine

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/profile"
	"github.com/ovpn3go/ovpn3go/internal/testbed"
	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

// BenchmarkIperf3 measures TCP throughput through a real tunnel to the
// OpenVPN 2.6 server (variant a) with iperf3, 5 s per iteration, up
// (client to server) and down (-R); run with -benchtime=1x.
func BenchmarkIperf3(b *testing.B) {
	testenv.RequireRoot(b)
	testenv.RequireCommand(b, "openvpn")
	testenv.RequireCommand(b, "iperf3")
	pair := testbed.NetPair(b)
	srv := testbed.Server(b, pair, testbed.VariantA)
	prof, err := profile.Parse(srv.Profile())
	if err != nil {
		b.Fatal(err)
	}
	h, err := nsHandle(pair.ClientNS)
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	states := newStateLog()
	c, err := New(Config{Profile: prof, Tun: &nsTun{ns: h}, Events: states, Dial: nsDial(pair.ClientNS)})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- c.Run(ctx) }()
	deadline := time.After(30 * time.Second)
	for connected := false; !connected; {
		select {
		case s := <-states.ch:
			connected = s == StateConnected
		case <-deadline:
			b.Fatal("not connected")
		}
	}
	iperfSrv := testbed.Command(ctx, pair.ServerNS, "iperf3", "-s", "-B", testbed.TunnelServer4)
	if err := iperfSrv.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { iperfSrv.Process.Kill(); iperfSrv.Wait() }()
	time.Sleep(300 * time.Millisecond)
	for _, dir := range []string{"up", "down"} {
		b.Run(dir, func(b *testing.B) {
			args := []string{"-c", testbed.TunnelServer4, "-t", "5", "-J"}
			if dir == "down" {
				args = append(args, "-R")
			}
			var mbps float64
			for b.Loop() {
				out, err := testbed.Run(ctx, pair.ClientNS, "iperf3", args...)
				if err != nil {
					b.Fatal(err)
				}
				var res struct {
					End struct {
						SumReceived struct {
							BitsPerSecond float64 `json:"bits_per_second"`
						} `json:"sum_received"`
					} `json:"end"`
				}
				if err := json.Unmarshal([]byte(out), &res); err != nil {
					b.Fatal(err)
				}
				mbps = res.End.SumReceived.BitsPerSecond / 1e6
			}
			b.ReportMetric(mbps, "Mbit/s")
		})
	}
	st := c.Stats()
	b.ReportMetric(float64(st.BytesOut)/1e6, "MB-out")
	cancel()
	<-runErr
}

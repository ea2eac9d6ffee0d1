package ratelimit

import (
	"testing"
	"time"
)

func TestBucket(t *testing.T) {
	now := time.Unix(1000, 0)
	l := New(Rate{PerMinute: 60, Burst: 3}, func() time.Time { return now })
	for i := range 3 {
		if ok, _ := l.Allow(1000); !ok {
			t.Fatalf("call %d of the burst refused", i)
		}
	}
	ok, wait := l.Allow(1000)
	if ok || wait != time.Second {
		t.Fatalf("call over the burst: ok=%v wait=%v, want refused, 1s", ok, wait)
	}
	if ok, _ := l.Allow(1001); !ok {
		t.Error("another user shares the first one's bucket")
	}
	for range 10 {
		if ok, _ := l.Allow(0); !ok {
			t.Fatal("root limited")
		}
	}
	now = now.Add(time.Second)
	if ok, _ := l.Allow(1000); !ok {
		t.Error("no token after a second at 60/minute")
	}
	if ok, _ := l.Allow(1000); ok {
		t.Error("two tokens after a second at 60/minute")
	}
	now = now.Add(time.Hour)
	for i := range 4 {
		if ok, _ := l.Allow(1000); ok != (i < 3) {
			t.Errorf("after an hour idle, call %d: ok=%v (the bucket holds at most the burst)", i, ok)
		}
	}
}

func TestBucketsBounded(t *testing.T) {
	now := time.Unix(1000, 0)
	l := New(Rate{PerMinute: 60, Burst: 1}, func() time.Time { return now })
	for uid := uint32(1); uid < 3*maxBuckets; uid++ {
		l.Allow(uid)
		now = now.Add(10 * time.Millisecond)
	}
	if len(l.buckets) > maxBuckets {
		t.Errorf("%d buckets kept, bound %d", len(l.buckets), maxBuckets)
	}
}

func TestParse(t *testing.T) {
	for in, want := range map[string]Rate{"0": {}, "30/10": {30, 10}, "0.5/1": {0.5, 1}} {
		if got, err := Parse(in); err != nil || got != want {
			t.Errorf("Parse(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "30", "30/0", "-1/5", "x/1", "1/x", "NaN/1", "1/2/3"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
	if r, _ := Parse("30/10"); r.String() != "30/10" {
		t.Errorf("String = %s", r)
	}
}

package main

import (
	"strings"
	"testing"
)

// Bad hls-origin options are refused with a message naming the option and
// the fix.
func TestHLSOriginConfigErrors(t *testing.T) {
	clearPortierEnv(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	base := []string{"--control", "http://c:8080", "--cluster-token", "t"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "--storage is required"},
		{[]string{"--storage", "ftp://x/y"}, "want a directory or s3://"},
		{[]string{"--storage", "s3://Bad_Bucket/p"}, "bucket name"},
		{[]string{"--storage", "s3://bucket/p"}, "--s3-endpoint is required"},
		{[]string{"--storage", "s3://bucket/p", "--s3-endpoint", "http://s3:9000"}, "--s3-insecure"},
		{[]string{"--storage", "s3://bucket/p", "--s3-endpoint", "http://s3:9000", "--s3-insecure"}, "AWS_ACCESS_KEY_ID"},
		{[]string{"--storage", "/x", "--retention", "0s"}, "--retention"},
		{[]string{"--storage", "/x", "--max-segment-bytes", "0"}, "--max-segment-bytes"},
		{[]string{"--storage", "/x", "--stream-quota-bytes", "10", "--max-segment-bytes", "20"}, "--max-segment-bytes"},
	} {
		_, err := loadConfig[hlsOriginConfig]("hls-origin", append(append([]string{}, base...), tc.args...))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("hls-origin %q: err %v, want one mentioning %q", tc.args, err, tc.want)
		}
	}
	if _, err := loadConfig[hlsOriginConfig]("hls-origin", []string{"--storage", "/x"}); err == nil ||
		!strings.Contains(err.Error(), "--control") || !strings.Contains(err.Error(), "--cluster-token") {
		t.Errorf("missing control and token: %v", err)
	}
	if b, p := s3Location("s3://media/live/hls/"); b != "media" || p != "live/hls/" {
		t.Errorf("s3Location = %q %q", b, p)
	}
}

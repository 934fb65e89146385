package resource

import (
	"encoding/json"
	"slices"
	"testing"
	"time"
)

func TestAudienceDecoding(t *testing.T) {
	cases := []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{`"https://a/api"`, []string{"https://a/api"}, false},
		{`["a"]`, []string{"a"}, false},
		{`[ "a" , "b" ]`, []string{"a", "b"}, false},
		{"[\n\t\"a\",\r\n\"b\"\n]", []string{"a", "b"}, false},
		{`[]`, []string{}, false},
		{`"with \"escape\""`, []string{`with "escape"`}, false},
		{`["x", "\u0061"]`, []string{"x", "a"}, false},
		{`""`, []string{""}, false},
		{`null`, nil, false},
		{`42`, nil, true},
		{`["a", 1]`, nil, true},
		{`[["a"]]`, nil, true},
		{`{"a":"b"}`, nil, true},
	}
	for _, tc := range cases {
		var got struct {
			Aud audience `json:"aud"`
		}
		err := json.Unmarshal([]byte(`{"aud":`+tc.in+`}`), &got)
		if (err != nil) != tc.wantErr {
			t.Errorf("%s: err = %v", tc.in, err)
			continue
		}
		if !tc.wantErr && !slices.Equal(got.Aud, tc.want) {
			t.Errorf("%s: got %q, want %q", tc.in, got.Aud, tc.want)
		}
	}
}

func TestNumericDate(t *testing.T) {
	for _, tc := range []struct {
		in   float64
		want time.Time
	}{
		{1700000000, time.Unix(1700000000, 0)},
		{1700000000.5, time.Unix(1700000000, 5e8)},
		{1e300, time.Unix(1e15, 0)},
		{-1e300, time.Unix(-1e15, 0)},
	} {
		if got := numericDate(tc.in); !got.Equal(tc.want) {
			t.Errorf("numericDate(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

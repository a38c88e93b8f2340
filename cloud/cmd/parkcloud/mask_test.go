package main

import (
	"strings"
	"testing"
)

// TestMaskShowsNoPartOfASecret (finding 16): the startup log says whether
// a secret is set, not its first characters or its length.
func TestMaskShowsNoPartOfASecret(t *testing.T) {
	t.Parallel()
	for _, secret := range []string{"sk_test_51Habcdefghijklmnop", "whsec_abcdefgh", "short"} {
		got := mask(secret)
		if got != "set" || strings.Contains(got, secret[:4]) {
			t.Errorf("mask(%q) = %q; want \"set\"", secret, got)
		}
	}
	if got := mask(""); got != "unset" {
		t.Errorf("mask(\"\") = %q; want \"unset\"", got)
	}
	got := maskURLs("tcp://cloud:s3cretpw@broker-a:1883, tcp://broker-b:1883")
	if strings.Contains(got, "s3cretpw") || !strings.Contains(got, "broker-b") {
		t.Errorf("maskURLs = %q; want the password hidden, the hosts kept", got)
	}
	// DATABASE_URL and DATABASE_READ_URL, one host or several.
	for _, u := range []string{"postgres://parkgate:s3cretpw@replica:5432/parkgate", "postgres://parkgate:s3cretpw@db-a:5432,db-b:5432/parkgate?target_session_attrs=read-write"} {
		if got := maskURL(u); strings.Contains(got, "s3cretpw") || !strings.Contains(got, "parkgate:****@") {
			t.Errorf("maskURL(%q) = %q; want the password hidden", u, got)
		}
	}
}

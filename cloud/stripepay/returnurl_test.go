package stripepay

import "testing"

// TestReturnURLsNameTheReservation (finding 18): the page Checkout sends
// the driver back to can show their reservation.
func TestReturnURLsNameTheReservation(t *testing.T) {
	t.Parallel()
	got := withReservation("http://127.0.0.1:8080/reservations/{RESERVATION_ID}?session_id={CHECKOUT_SESSION_ID}", "0b7e4f4e-1c1a-4b8e-9d55-3f2a8c1e6d11")
	want := "http://127.0.0.1:8080/reservations/0b7e4f4e-1c1a-4b8e-9d55-3f2a8c1e6d11?session_id={CHECKOUT_SESSION_ID}"
	if got != want {
		t.Errorf("success URL %q, want %q", got, want)
	}
}

package stripefake_test

import (
	"fmt"
	"net/http/httptest"

	"github.com/stripe/stripe-go/v76"

	"github.com/parkgate/parkgate/internal/testkit/stripefake"
)

// Point stripe-go at the fake, open a session, and play the driver's part.
func Example() {
	fake := stripefake.New(stripefake.Options{})
	defer fake.Close()
	srv := httptest.NewServer(fake)
	defer srv.Close()
	api := newAPI(srv.URL, "sk_test_example")

	s, err := api.CheckoutSessions.New(sessionParams("res-42"))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(s.Status, s.PaymentStatus)

	if _, err := fake.Pay(s.ID); err != nil {
		fmt.Println(err)
		return
	}
	s, _ = api.CheckoutSessions.Get(s.ID, &stripe.CheckoutSessionParams{})
	fmt.Println(s.Status, s.PaymentStatus, s.ClientReferenceID)
	// Output:
	// open unpaid
	// complete paid res-42
}

package httpapi_test

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/parkgate/parkgate/cloud/httpapi"
	"github.com/parkgate/parkgate/protocol"
)

// TestOpenAPIOperator: the operator routes' real answers, success and
// error, match the document's schemas.
func TestOpenAPIOperator(t *testing.T) {
	t.Parallel()
	b := setupPayments(t, 10*time.Minute)
	v := newValidator(t, b.srv.URL, (&httpapi.Server{}).Handler())
	lot := b.createLot(t, 2)
	start := time.Now().Add(2 * time.Hour).Truncate(time.Minute).UTC()
	id, _ := b.paidBooking(t, lot, "OAOP1", "oaop-1", start)
	b.open(t, lot, protocol.DirectionEntry, "OAOP1")
	unknown := uuid.NewString()

	v.expect(t, 200, "GET", "/v1/lots/"+lot, nil, nil)
	v.expect(t, 404, "GET", "/v1/lots/"+unknown, nil, nil)
	v.expect(t, 200, "PATCH", "/v1/lots/"+lot, map[string]any{"name": "North", "denied_alert": map[string]any{"count": 3}}, admin())
	v.expect(t, 400, "PATCH", "/v1/lots/"+lot, map[string]any{"exit_grace": "soon"}, admin())
	v.expect(t, 401, "PATCH", "/v1/lots/"+lot, map[string]any{"name": "X"}, nil)
	v.expect(t, 404, "PATCH", "/v1/lots/"+unknown, map[string]any{"name": "X"}, admin())
	v.expect(t, 415, "PATCH", "/v1/lots/"+lot, "name=X", map[string]string{"Authorization": "Bearer " + adminToken, "Content-Type": "text/plain"})

	v.expect(t, 200, "GET", "/v1/lots/"+lot+"/reservations?limit=1", nil, admin())
	v.expect(t, 200, "GET", "/v1/lots/"+lot+"/reservations?status=CONFIRMED&plate=oaop1", nil, admin())
	v.expect(t, 400, "GET", "/v1/lots/"+lot+"/reservations?limit=0", nil, admin())
	v.expect(t, 401, "GET", "/v1/lots/"+lot+"/reservations", nil, nil)
	v.expect(t, 404, "GET", "/v1/lots/"+unknown+"/reservations", nil, admin())
	v.expect(t, 200, "GET", "/v1/lots/"+lot+"/gate-events", nil, admin())
	v.expect(t, 400, "GET", "/v1/lots/"+lot+"/gate-events?after=-1", nil, admin())

	path := "/v1/reservations/" + id + "/refund"
	withKey := map[string]string{"Authorization": "Bearer " + adminToken, "Idempotency-Key": "oaop-r1"}
	v.expect(t, 200, "POST", path, map[string]any{"amount": 50}, withKey)
	if r := v.expect(t, 200, "POST", path, map[string]any{"amount": 50}, withKey); r.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("replay without Idempotent-Replayed")
	}
	v.expect(t, 422, "POST", path, map[string]any{"amount": 51}, withKey)
	v.expect(t, 409, "POST", path, map[string]any{"amount": 1000}, admin())
	v.expect(t, 400, "POST", path, map[string]any{"amount": 0}, admin())
	v.expect(t, 401, "POST", path, nil, nil)
	v.expect(t, 404, "POST", "/v1/reservations/"+unknown+"/refund", nil, admin())

	v.expect(t, 200, "PATCH", "/v1/lots/"+lot, map[string]any{"closed": true}, admin())
	v.expect(t, 409, "POST", "/v1/reservations", hold(lot, "OAOP2", start, start.Add(time.Hour)), key("oaop-2"))
}

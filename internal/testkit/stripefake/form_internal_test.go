package stripefake

import (
	"net/url"
	"reflect"
	"testing"
)

func TestParseForm(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    form
		wantErr bool
	}{
		{"Flat", "mode=payment&a=1", form{"mode": "payment", "a": "1"}, false},
		{"Nested", "line_items[0][price_data][unit_amount]=450&line_items[0][quantity]=1&metadata[reservation_id]=r1",
			form{
				"line_items": form{"0": form{"price_data": form{"unit_amount": "450"}, "quantity": "1"}},
				"metadata":   form{"reservation_id": "r1"},
			}, false},
		{"Append", "expand[]=a&expand[]=b", form{"expand": form{"0": "a", "1": "b"}}, false},
		{"Conflict", "metadata=x&metadata[a]=y", nil, true},
		{"Unclosed", "metadata[a=y", nil, true},
		{"NoName", "[a]=y", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := url.ParseQuery(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			got, err := parseForm(v)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err %v", err)
			}
			if !tt.wantErr && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v\nwant %#v", got, tt.want)
			}
		})
	}
}

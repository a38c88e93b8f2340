package stripefake

import (
	"reflect"
	"strings"
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
		{"Escaped", "metadata%5Blot%5D=a+b%26c&name=%C3%BC", form{"metadata": form{"lot": "a b&c"}, "name": "ü"}, false},
		{"FirstOfRepeated", "a=1&a=2&b[x]=3&b[x]=4", form{"a": "1", "b": form{"x": "3"}}, false},
		{"EmptyPairs", "&a=1&&b=&", form{"a": "1", "b": ""}, false},
		{"ConflictReversed", "metadata[a]=y&metadata=x", nil, true},
		{"Semicolon", "a=1;b=2", nil, true},
		{"BadEscape", "a=%zz", nil, true},
		{"RepeatedBracketInName", "a[[]=1&a[[]=2", form{"a": form{"[": "1"}}, false},
		{"RepeatedEmptyName", "=x&=y", form{"0": "x", "1": "y"}, false},
		{"TooMany", strings.Repeat("a[]=1&", 10000), nil, true},
		{"TooManyEvenEmpty", "a=1" + strings.Repeat("&", 10000), nil, true},
		{"AsManyAsParseQueryTakes", strings.Repeat("&", 9999), form{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseForm(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err %v", err)
			}
			if !tt.wantErr && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v\nwant %#v", got, tt.want)
			}
		})
	}
}

package doctor

import (
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
)

// Quantity shows a Kubernetes quantity as a person reads it: the raw form the API prints and,
// when that is not plain, its decimal value beside it ("3604m = 3.604", "1k = 1000", "5").
func Quantity(raw string) string {
	q, err := resource.ParseQuantity(raw)
	if err != nil {
		return raw
	}
	dec := Decimal(q)
	if dec == raw {
		return raw
	}
	return raw + " = " + dec
}

// Decimal is a quantity's exact value in plain decimal notation, without trailing zeros.
func Decimal(q resource.Quantity) string {
	s := q.AsDec().String()
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

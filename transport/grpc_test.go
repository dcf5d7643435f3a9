package transport

import (
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protowire"
)

// TestGRPCCodeMapping: every HTTP status a rule can answer maps to a code, the explicit code wins,
// and the codes that have an HTTP twin go there and back (HTTPStatus, for upstream calls) to
// themselves.
func TestGRPCCodeMapping(t *testing.T) {
	for _, c := range []struct {
		status   int
		explicit uint8
		want     codes.Code
	}{
		{200, 0, codes.OK}, {204, 0, codes.OK}, {302, 0, codes.OK}, {400, 0, codes.InvalidArgument},
		{401, 0, codes.Unauthenticated}, {403, 0, codes.PermissionDenied}, {404, 0, codes.NotFound},
		{409, 0, codes.Aborted}, {413, 0, codes.ResourceExhausted}, {418, 0, codes.FailedPrecondition},
		{429, 0, codes.ResourceExhausted}, {499, 0, codes.Canceled}, {500, 0, codes.Internal},
		{501, 0, codes.Unimplemented}, {502, 0, codes.Unavailable}, {503, 0, codes.Unavailable},
		{504, 0, codes.DeadlineExceeded}, {508, 0, codes.Internal}, {500, 15, codes.DataLoss},
		{200, 10, codes.Aborted}, {500, 17, codes.Internal},
	} {
		if got := GRPCCode(c.status, c.explicit); got != c.want {
			t.Errorf("GRPCCode(%d, %d) = %v, want %v", c.status, c.explicit, got, c.want)
		}
	}
	for _, code := range []codes.Code{codes.OK, codes.Canceled, codes.InvalidArgument, codes.DeadlineExceeded, codes.NotFound,
		codes.PermissionDenied, codes.Unauthenticated, codes.ResourceExhausted, codes.Unimplemented, codes.Unavailable, codes.Internal} {
		if back := GRPCCode(HTTPStatus(code), 0); back != code {
			t.Errorf("%v → %d → %v", code, HTTPStatus(code), back)
		}
	}
}

// TestCodecPassesFramesRawAndPadsAsAnUnknownField: a Frame goes through the codec unchanged, and
// the padding field parses as one bytes field after the message's own.
func TestCodecPassesFramesRawAndPadsAsAnUnknownField(t *testing.T) {
	in := Frame(protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), "hi"))
	b, err := Codec{}.Marshal(&in)
	if err != nil || string(b) != string(in) {
		t.Fatalf("Marshal: %x %v", b, err)
	}
	var out Frame
	if err := (Codec{}).Unmarshal(b, &out); err != nil || string(out) != string(in) {
		t.Fatalf("Unmarshal: %x %v", out, err)
	}
	padded := appendPaddingField(in, 300)
	rest := padded[len(in):]
	num, typ, n := protowire.ConsumeTag(rest)
	v, m := protowire.ConsumeBytes(rest[max(n, 0):])
	if num != PaddingField || typ != protowire.BytesType || len(v) != 300 || n+m != len(rest) {
		t.Fatalf("padding field %d type %d, %d bytes, %d of %d consumed", num, typ, len(v), n+m, len(rest))
	}
	if _, err := (Codec{}).Marshal(42); err == nil {
		t.Error("Marshal of an int did not fail")
	}
}

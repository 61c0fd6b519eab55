package cwmpclient

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Type is a TR-106 parameter data type.
type Type uint8

// Parameter types.
const (
	TypeString Type = iota
	TypeUnsignedInt
	TypeInt
	TypeUnsignedLong
	TypeLong
	TypeBoolean
	TypeDateTime
	TypeBase64
	TypeHexBinary
)

var typeNames = [...]string{"string", "unsignedInt", "int", "unsignedLong", "long", "boolean", "dateTime", "base64Binary", "hexBinary"}

// XSD is the type's name in xsi:type, without the xsd: prefix.
func (t Type) XSD() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return "string"
}

func (t Type) String() string { return t.XSD() }

// typeByXSD maps an xsi:type local name to a Type; ok is false for names
// this client does not model.
func typeByXSD(s string) (Type, bool) {
	if s == "base64" {
		return TypeBase64, true
	}
	for i, n := range typeNames {
		if n == s {
			return Type(i), true
		}
	}
	return 0, false
}

// Normalize checks s against t and returns the canonical form the tree
// stores (booleans as "true"/"false", numbers without sign or leading
// zeros noise), so value-change detection compares like with like.
func (t Type) Normalize(s string) (string, error) {
	s = strings.TrimSpace(s)
	switch t {
	case TypeString:
		return s, nil
	case TypeUnsignedInt:
		n, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			return "", fmt.Errorf("%q is not an unsignedInt", s)
		}
		return strconv.FormatUint(n, 10), nil
	case TypeInt:
		n, err := strconv.ParseInt(s, 10, 32)
		if err != nil {
			return "", fmt.Errorf("%q is not an int", s)
		}
		return strconv.FormatInt(n, 10), nil
	case TypeUnsignedLong:
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return "", fmt.Errorf("%q is not an unsignedLong", s)
		}
		return strconv.FormatUint(n, 10), nil
	case TypeLong:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return "", fmt.Errorf("%q is not a long", s)
		}
		return strconv.FormatInt(n, 10), nil
	case TypeBoolean:
		switch s {
		case "1", "true":
			return "true", nil
		case "0", "false":
			return "false", nil
		}
		return "", fmt.Errorf("%q is not a boolean", s)
	case TypeDateTime:
		if _, err := parseDateTime(s); err != nil {
			return "", err
		}
		return s, nil
	case TypeBase64:
		if _, err := base64.StdEncoding.DecodeString(s); err != nil {
			return "", fmt.Errorf("%q is not base64", s)
		}
		return s, nil
	case TypeHexBinary:
		if _, err := hex.DecodeString(s); err != nil {
			return "", fmt.Errorf("%q is not hexBinary", s)
		}
		return strings.ToLower(s), nil
	}
	return "", fmt.Errorf("unknown type %d", t)
}

// parseDateTime accepts xsd:dateTime with or without fraction and zone
// (a zoneless time is local to the CPE per TR-069 A.2.2.1).
func parseDateTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a dateTime", s)
}

package openwrt

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// File is one parsed UCI configuration package (/etc/config/<name>), its
// sections in file order.
type File struct {
	// Package is the name given by a "package" line; empty when the file
	// has none (the usual case: the file name is the package name).
	Package  string
	Sections []*Section
	// Source is the name given to ParseUCI, for messages; Marshal ignores it.
	Source string
}

// Section is one "config <type> ['<name>']" block.
type Section struct {
	Type string
	// Name is empty for an anonymous section; address it as @type[N].
	Name    string
	Options []*Option
	// Line is where the section was (first) opened, for error messages.
	Line int
}

// Option is one option (a single value) or list (values in order).
type Option struct {
	Name   string
	Values []string
	List   bool
	// Line is where the option was last set, for error messages.
	Line int
}

// ParseError is a syntax or grammar error, located like libuci does it.
type ParseError struct {
	File string // as given to ParseUCI; may be empty
	Line int
	Msg  string
	Text string // the offending line, trimmed and shortened
}

func (e *ParseError) Error() string {
	loc := strconv.Itoa(e.Line)
	if e.File != "" {
		loc = e.File + ":" + loc
	}
	if e.Text == "" {
		return fmt.Sprintf("%s: %s", loc, e.Msg)
	}
	return fmt.Sprintf("%s: %s: %q", loc, e.Msg, e.Text)
}

// ParseUCI parses the UCI file format as libuci (uci_import, strict mode)
// does, name being the file name used in errors:
//
//   - commands "package", "config", "option", "list" (or their first
//     letter); "#" starts a comment where an argument could start or inside
//     an unquoted argument; blank lines are ignored;
//   - an argument is a run of unquoted, 'single-quoted' and "double-quoted"
//     pieces without whitespace between them, concatenated;
//   - outside single quotes a backslash takes the next byte literally (so
//     "\n" is "n"), and a backslash at the end of a line joins the next one;
//     inside single quotes a backslash is an ordinary byte; quoted strings
//     may span lines and keep the newlines;
//   - section and option names are letters, digits and "_"; a type is any
//     printable ASCII without spaces;
//   - an option with an empty value ("option x" followed by two single
//     quotes) is ignored, as libuci ignores it;
//     setting an option again replaces it and moves it last; "list" after
//     "option" of the same name turns it into a list; a named section that
//     appears again is reopened (with a different type it is an error).
//
// Deviations, all on input libuci mishandles: an unquoted ";" always ends
// the command and the rest of the line is parsed as the next command
// (libuci drops that rest in some positions), NUL bytes are an error, and
// a second "package" line naming another package is an error (File holds
// one package).
func ParseUCI(name string, data []byte) (*File, error) {
	p := &uciParser{name: name, data: data, line: 1, f: &File{Source: name}}
	if i := bytes.IndexByte(data, 0); i >= 0 {
		p.line += bytes.Count(data[:i], []byte{'\n'})
		return nil, p.errf(p.lineText(i), "NUL byte at offset %d", i)
	}
	if err := p.parse(); err != nil {
		return nil, err
	}
	return p.f, nil
}

// ReadUCI is ParseUCI over a reader.
func ReadUCI(name string, r io.Reader) (*File, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return ParseUCI(name, b)
}

type uciParser struct {
	name string
	data []byte
	pos  int
	line int // line of pos
	f    *File
	cur  *Section
	// cmdLine and cmdStart locate the command being parsed, for errors.
	cmdLine, cmdStart int
	// ended is set when an unquoted ";" closed the current command.
	ended bool
}

func (p *uciParser) errf(text, format string, a ...any) error {
	return &ParseError{File: p.name, Line: p.line, Msg: fmt.Sprintf(format, a...), Text: text}
}

// cmdErr reports an error at the command being parsed.
func (p *uciParser) cmdErr(format string, a ...any) error {
	return &ParseError{File: p.name, Line: p.cmdLine, Msg: fmt.Sprintf(format, a...), Text: p.lineText(p.cmdStart)}
}

// lineText is the line containing offset i, trimmed and cut to 80 bytes.
func (p *uciParser) lineText(i int) string {
	start := bytes.LastIndexByte(p.data[:i], '\n') + 1
	end := len(p.data)
	if j := bytes.IndexByte(p.data[i:], '\n'); j >= 0 {
		end = i + j
	}
	s := strings.TrimSpace(string(p.data[start:end]))
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return s
}

func (p *uciParser) peek() (byte, bool) {
	if p.pos >= len(p.data) {
		return 0, false
	}
	return p.data[p.pos], true
}

// isBlank is whitespace within a line (C isspace without the newline).
func isBlank(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f' }

func (p *uciParser) skipBlanks() {
	for p.pos < len(p.data) && isBlank(p.data[p.pos]) {
		p.pos++
	}
}

// atEOL is true at a newline or the end of input.
func (p *uciParser) atEOL() bool {
	c, ok := p.peek()
	return !ok || c == '\n'
}

func (p *uciParser) parse() error {
	for p.pos < len(p.data) {
		p.skipBlanks()
		if p.atEOL() {
			p.nextLine()
			continue
		}
		c, _ := p.peek()
		if c == '#' {
			p.skipLine()
			continue
		}
		if c == ';' { // an empty command
			p.pos++
			continue
		}
		if err := p.command(); err != nil {
			return err
		}
		if p.ended {
			p.ended = false
			continue
		}
		// The command consumed its arguments up to a comment or the line end.
		p.skipLine()
	}
	return nil
}

func (p *uciParser) nextLine() {
	if p.pos < len(p.data) && p.data[p.pos] == '\n' {
		p.pos++
		p.line++
	}
}

func (p *uciParser) skipLine() {
	for p.pos < len(p.data) && p.data[p.pos] != '\n' {
		p.pos++
	}
	p.nextLine()
}

func (p *uciParser) command() error {
	p.cmdLine, p.cmdStart = p.line, p.pos
	start := p.pos
	for p.pos < len(p.data) && !isBlank(p.data[p.pos]) && p.data[p.pos] != '\n' {
		p.pos++
	}
	word := string(p.data[start:p.pos])
	switch word {
	case "p", "package":
		return p.packageCmd()
	case "c", "config":
		return p.configCmd()
	case "o", "option":
		return p.optionCmd(false)
	case "l", "list":
		return p.optionCmd(true)
	}
	return p.cmdErr("invalid command %q", word)
}

// arg reads the next argument of the current command; "" when the command
// has no more (line end, comment or ";").
func (p *uciParser) arg() (string, error) {
	if p.ended {
		return "", nil
	}
	p.skipBlanks()
	var b []byte
	for {
		c, ok := p.peek()
		if !ok || c == '\n' || isBlank(c) {
			return string(b), nil
		}
		switch c {
		case '#':
			// The rest of the line is a comment: leave pos there so that
			// further arguments are empty too.
			p.skipToEOL()
			return string(b), nil
		case ';':
			p.pos++
			p.ended = true
			return string(b), nil
		case '\'':
			var err error
			if b, err = p.singleQuoted(b); err != nil {
				return "", err
			}
		case '"':
			var err error
			if b, err = p.doubleQuoted(b); err != nil {
				return "", err
			}
		case '\\':
			if c, ok := p.backslash(); ok {
				b = append(b, c)
			}
		default:
			b = append(b, c)
			p.pos++
		}
	}
}

func (p *uciParser) skipToEOL() {
	for !p.atEOL() {
		p.pos++
	}
}

// backslash consumes a backslash and what it escapes. At the end of a line
// (before "\n", "\r\n" or the end of input) it joins the next line and
// yields no byte; else it yields the next byte literally.
func (p *uciParser) backslash() (byte, bool) {
	p.pos++
	c, ok := p.peek()
	switch {
	case !ok:
		return 0, false
	case c == '\n':
		p.pos++
		p.line++
		return 0, false
	case c == '\r' && p.pos+1 < len(p.data) && p.data[p.pos+1] == '\n':
		p.pos += 2
		p.line++
		return 0, false
	}
	p.pos++
	return c, true
}

func (p *uciParser) singleQuoted(b []byte) ([]byte, error) {
	startLine, start := p.line, p.pos
	p.pos++
	for {
		c, ok := p.peek()
		if !ok {
			return nil, &ParseError{File: p.name, Line: startLine, Msg: "EOF with unterminated '", Text: p.lineText(start)}
		}
		p.pos++
		if c == '\'' {
			return b, nil
		}
		if c == '\n' {
			p.line++
		}
		b = append(b, c)
	}
}

func (p *uciParser) doubleQuoted(b []byte) ([]byte, error) {
	startLine, start := p.line, p.pos
	p.pos++
	for {
		c, ok := p.peek()
		if !ok {
			return nil, &ParseError{File: p.name, Line: startLine, Msg: `EOF with unterminated "`, Text: p.lineText(start)}
		}
		switch c {
		case '"':
			p.pos++
			return b, nil
		case '\\':
			if c, ok := p.backslash(); ok {
				b = append(b, c)
			}
		default:
			if c == '\n' {
				p.line++
			}
			b = append(b, c)
			p.pos++
		}
	}
}

// eol is libuci's assert_eol in strict mode: no argument may follow.
func (p *uciParser) eol() error {
	extra, err := p.arg()
	if err != nil {
		return err
	}
	if extra != "" {
		return p.cmdErr("too many arguments (%q)", extra)
	}
	return nil
}

func (p *uciParser) packageCmd() error {
	name, err := p.arg()
	if err != nil {
		return err
	}
	if name == "" {
		return p.cmdErr("package without name")
	}
	if !validName(name, true) {
		return p.cmdErr("invalid character in name field (%q)", name)
	}
	if err := p.eol(); err != nil {
		return err
	}
	switch {
	case p.f.Package == "" && len(p.f.Sections) == 0:
		p.f.Package = name
	case p.f.Package != name:
		return p.cmdErr("package %q after the start of package %q: one package per file is supported", name, p.f.Package)
	}
	return nil
}

func (p *uciParser) configCmd() error {
	typ, err := p.arg()
	if err != nil {
		return err
	}
	if typ == "" {
		return p.cmdErr("insufficient arguments")
	}
	if !validType(typ) {
		return p.cmdErr("invalid character in type field (%q)", typ)
	}
	name, err := p.arg()
	if err != nil {
		return err
	}
	if name != "" && !validName(name, false) {
		return p.cmdErr("invalid character in name field (%q)", name)
	}
	if err := p.eol(); err != nil {
		return err
	}
	if name != "" {
		if s := p.f.named(name); s != nil {
			if s.Type != typ {
				return p.cmdErr("section of different type overwrites prior section with same name (%q is %q, not %q)", name, s.Type, typ)
			}
			p.cur = s
			return nil
		}
	}
	p.cur = &Section{Type: typ, Name: name, Line: p.cmdLine}
	p.f.Sections = append(p.f.Sections, p.cur)
	return nil
}

func (p *uciParser) optionCmd(list bool) error {
	if p.cur == nil {
		return p.cmdErr("option/list command found before the first section")
	}
	name, err := p.arg()
	if err != nil {
		return err
	}
	if name == "" {
		return p.cmdErr("insufficient arguments")
	}
	if !validName(name, false) {
		return p.cmdErr("invalid character in name field (%q)", name)
	}
	value, err := p.arg()
	if err != nil {
		return err
	}
	if err := p.eol(); err != nil {
		return err
	}
	s := p.cur
	i := s.index(name)
	switch {
	case list && i < 0:
		s.Options = append(s.Options, &Option{Name: name, Values: []string{value}, List: true, Line: p.cmdLine})
	case list && s.Options[i].List:
		s.Options[i].Values = append(s.Options[i].Values, value)
		s.Options[i].Line = p.cmdLine
	case list:
		// An option becomes a list: the old value first, moved last.
		o := s.Options[i]
		s.Options = append(append(s.Options[:i:i], s.Options[i+1:]...),
			&Option{Name: name, Values: []string{o.Values[0], value}, List: true, Line: p.cmdLine})
	case value == "":
		// libuci's uci_set with an empty value on a fresh parse is a no-op.
	case i >= 0 && !s.Options[i].List && s.Options[i].Values[0] == value:
		// Same value again: libuci leaves the option where it is.
	case i >= 0:
		s.Options = append(append(s.Options[:i:i], s.Options[i+1:]...),
			&Option{Name: name, Values: []string{value}, Line: p.cmdLine})
	default:
		s.Options = append(s.Options, &Option{Name: name, Values: []string{value}, Line: p.cmdLine})
	}
	return nil
}

// validName is libuci's uci_validate_str for names: letters, digits, "_",
// and for package names also "-".
func validName(s string, pkg bool) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || pkg && c == '-' {
			continue
		}
		return false
	}
	return true
}

// validType is libuci's uci_validate_type: printable ASCII, no spaces.
func validType(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 33 || s[i] > 126 {
			return false
		}
	}
	return true
}

func (f *File) named(name string) *Section {
	for _, s := range f.Sections {
		if s.Name == name {
			return s
		}
	}
	return nil
}

func (s *Section) index(option string) int {
	for i, o := range s.Options {
		if o.Name == option {
			return i
		}
	}
	return -1
}

// Section finds a section by name, or by libuci's extended reference
// "@type[N]" (the Nth section of that type, from 0; negative counts from
// the end: @type[-1] is the last) or "@[N]" (any type).
func (f *File) Section(ref string) (*Section, bool) {
	if !strings.HasPrefix(ref, "@") {
		s := f.named(ref)
		return s, s != nil
	}
	typ, idx, ok := strings.Cut(ref[1:], "[")
	if !ok || !strings.HasSuffix(idx, "]") {
		return nil, false
	}
	n, err := strconv.Atoi(strings.TrimSuffix(idx, "]"))
	if err != nil {
		return nil, false
	}
	var matches []*Section
	for _, s := range f.Sections {
		if typ == "" || s.Type == typ {
			matches = append(matches, s)
		}
	}
	if n < 0 {
		n += len(matches)
	}
	if n < 0 || n >= len(matches) {
		return nil, false
	}
	return matches[n], true
}

// SectionsOfType returns the sections of one type in file order.
func (f *File) SectionsOfType(typ string) []*Section {
	var out []*Section
	for _, s := range f.Sections {
		if s.Type == typ {
			out = append(out, s)
		}
	}
	return out
}

// Get is "uci get package.<ref>.<option>": the option's value, a list's
// values joined by spaces. ok is false when the section or option is absent.
func (f *File) Get(ref, option string) (string, bool) {
	s, ok := f.Section(ref)
	if !ok {
		return "", false
	}
	return s.Get(option)
}

// List returns an option's values (a plain option as one value).
func (f *File) List(ref, option string) []string {
	s, ok := f.Section(ref)
	if !ok {
		return nil
	}
	return s.List(option)
}

// Option returns the named option of the section.
func (s *Section) Option(name string) (*Option, bool) {
	if i := s.index(name); i >= 0 {
		return s.Options[i], true
	}
	return nil, false
}

// Get returns an option's value, a list's values joined by spaces (as
// "uci get" prints them).
func (s *Section) Get(option string) (string, bool) {
	o, ok := s.Option(option)
	if !ok {
		return "", false
	}
	return strings.Join(o.Values, " "), true
}

// List returns an option's values; a plain option is a one-element list.
func (s *Section) List(option string) []string {
	o, ok := s.Option(option)
	if !ok {
		return nil
	}
	return append([]string(nil), o.Values...)
}

// Marshal writes f in the form "uci export" writes: values single-quoted
// (a quote inside becomes quote, backslash, quote, quote), types bare when they are plain words, one tab
// of indent. Parsing the result gives f back. It refuses what UCI cannot
// represent: invalid names and types, NUL bytes, an empty plain option
// (UCI drops it), a list without values, duplicate section names, and
// duplicate option names within a section.
func (f *File) Marshal() ([]byte, error) {
	var b bytes.Buffer
	if f.Package != "" {
		if !validName(f.Package, true) {
			return nil, fmt.Errorf("uci package name %q: want letters, digits, _ and -", f.Package)
		}
		fmt.Fprintf(&b, "package %s\n", f.Package)
	}
	names := map[string]bool{}
	for i, s := range f.Sections {
		where := fmt.Sprintf("section %d (%s %q)", i, s.Type, s.Name)
		if !validType(s.Type) {
			return nil, fmt.Errorf("uci %s: type %q: want printable ASCII without spaces", where, s.Type)
		}
		b.WriteString("\nconfig ")
		b.WriteString(quoteType(s.Type))
		if s.Name != "" {
			if !validName(s.Name, false) {
				return nil, fmt.Errorf("uci %s: name %q: want letters, digits and _", where, s.Name)
			}
			if names[s.Name] {
				return nil, fmt.Errorf("uci %s: name %q is used twice", where, s.Name)
			}
			names[s.Name] = true
			b.WriteString(" '" + s.Name + "'")
		}
		b.WriteByte('\n')
		opts := map[string]bool{}
		for _, o := range s.Options {
			if err := checkOption(o, opts); err != nil {
				return nil, fmt.Errorf("uci %s: %w", where, err)
			}
			kw := "option"
			if o.List {
				kw = "list"
			}
			for _, v := range o.Values {
				fmt.Fprintf(&b, "\t%s %s %s\n", kw, o.Name, quoteValue(v))
			}
		}
	}
	b.WriteByte('\n')
	return b.Bytes(), nil
}

func checkOption(o *Option, seen map[string]bool) error {
	if !validName(o.Name, false) {
		return fmt.Errorf("option name %q: want letters, digits and _", o.Name)
	}
	if seen[o.Name] {
		return fmt.Errorf("option %q is set twice", o.Name)
	}
	seen[o.Name] = true
	switch {
	case o.List && len(o.Values) == 0:
		return fmt.Errorf("list %q has no values (UCI cannot write an empty list; omit it)", o.Name)
	case !o.List && len(o.Values) != 1:
		return fmt.Errorf("option %q has %d values, want 1 (or make it a list)", o.Name, len(o.Values))
	case !o.List && o.Values[0] == "":
		return fmt.Errorf("option %q is empty (UCI ignores empty options; omit it)", o.Name)
	}
	for _, v := range o.Values {
		if strings.IndexByte(v, 0) >= 0 {
			return fmt.Errorf("option %q value %q: NUL byte", o.Name, v)
		}
	}
	return nil
}

func quoteValue(v string) string {
	return "'" + strings.ReplaceAll(v, "'", `'\''`) + "'"
}

// quoteType leaves a type bare when it is a plain word (the usual case:
// "interface", "srv6cpe") and quotes anything with a character the parser
// would treat specially.
func quoteType(t string) string {
	if strings.ContainsAny(t, `'"\#;`) {
		return quoteValue(t)
	}
	return t
}

#!/usr/bin/env python3
"""Checks the Julia binding against the C header, without Julia.

Parses include/descent/descent.h (every DESCENT_API function: return type, parameter types and
count; the callback typedefs) and the Julia sources (every `ccall((:name, libdescent), Ret,
(Args...), args...)` and every `@cfunction(_X_trampoline, Ret, (Args...))`), maps C types to
Julia types with the explicit table below and fails on any mismatch: a ccall of a function the
header lacks, a wrong argument count, a wrong type, a header function without a ccall, a
callback typedef without a matching trampoline. It also fails if the binding calls the
thread-local descent_last_error anywhere but in its own wrapper.

usage: check_signatures.py [--header PATH] [JULIA_FILE ...]   (default: src/*.jl beside this file)
Python 3 standard library only.
"""
import argparse
import glob
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_HEADER = os.path.join(HERE, "..", "..", "include", "descent", "descent.h")

# C type (normalised: single spaces, '*' attached to the left) -> allowed Julia types.
# Every C type that appears in the header must be here; an unknown one is an error.
PARAM_TYPES = {
    "descent_status": {"Cuint"},
    "descent_dtype": {"Cuint"},
    "descent_value_type": {"Cuint"},
    "unsigned": {"Cuint"},
    "size_t": {"Csize_t"},
    "int64_t": {"Int64"},
    "uint64_t": {"UInt64"},
    "double": {"Cdouble", "Float64"},
    "bool": {"Bool"},
    # strings
    "const char*": {"Cstring", "Ptr{UInt8}"},
    "char*": {"Ptr{UInt8}"},  # a caller buffer the library writes into
    "const char**": {"Ref{Ptr{UInt8}}", "Ptr{Ptr{UInt8}}"},
    "const char* const*": {"Ptr{Ptr{UInt8}}", "Ptr{Cstring}"},
    # handles
    "descent_optimizer*": {"Ptr{Cvoid}"},
    "const descent_optimizer*": {"Ptr{Cvoid}"},
    "descent_optimizer**": {"Ref{Ptr{Cvoid}}", "Ptr{Ptr{Cvoid}}"},
    "descent_collectives*": {"Ptr{Cvoid}"},  # since 1.1
    "const descent_collectives*": {"Ptr{Cvoid}"},
    "descent_collectives**": {"Ref{Ptr{Cvoid}}", "Ptr{Ptr{Cvoid}}"},
    "descent_reduce_op": {"Cuint"},  # a 32-bit enum, like the statuses
    # plain memory
    "void*": {"Ptr{Cvoid}"},
    "const void*": {"Ptr{Cvoid}"},
    "void* const*": {"Ptr{Ptr{Cvoid}}"},
    "const void* const*": {"Ptr{Ptr{Cvoid}}"},
    # out-parameters and arrays of scalars
    "size_t*": {"Ref{Csize_t}", "Ptr{Csize_t}"},
    "const size_t*": {"Ptr{Csize_t}"},
    "int64_t*": {"Ref{Int64}", "Ptr{Int64}"},
    "const int64_t*": {"Ptr{Int64}"},
    "double*": {"Ref{Cdouble}", "Ptr{Cdouble}"},
    "const double*": {"Ptr{Cdouble}"},
    "bool*": {"Ref{Bool}", "Ptr{Bool}"},
    "descent_dtype*": {"Ref{Cuint}", "Ptr{Cuint}"},
    "const descent_dtype*": {"Ptr{Cuint}"},
    "descent_value_type*": {"Ref{Cuint}", "Ptr{Cuint}"},
    # function pointers
    "descent_schedule_fn": {"Ptr{Cvoid}"},
    "descent_filter_fn": {"Ptr{Cvoid}"},
    "descent_allgatherv_fn": {"Ptr{Cvoid}"},  # since 1.1
    "descent_allreduce_fn": {"Ptr{Cvoid}"},
    "fnptr": {"Ptr{Cvoid}"},  # an inline function-pointer parameter, e.g. void (*free)(void*)
}
RETURN_TYPES = {
    "void": {"Cvoid", "Nothing"},
    "descent_status": {"Cuint"},
    "unsigned": {"Cuint"},
    "size_t": {"Csize_t"},
    "const char*": {"Cstring", "Ptr{UInt8}"},
}
# Types that are whole words in C declarations (so a trailing word after them is a name).
C_TYPE_WORDS = {"void", "char", "bool", "double", "unsigned", "size_t", "int64_t", "uint64_t",
                "descent_status", "descent_dtype", "descent_value_type", "descent_optimizer",
                "descent_schedule_fn", "descent_filter_fn", "descent_collectives",
                "descent_reduce_op", "descent_allgatherv_fn", "descent_allreduce_fn", "const"}


class Failure(Exception):
    pass


def strip_c_comments(text):
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", " ", text)


def split_top(text, sep=","):
    """Splits at `sep` outside (), {}, [] and string literals."""
    parts, depth, cur, i, in_str = [], 0, [], 0, None
    while i < len(text):
        c = text[i]
        if in_str:
            cur.append(c)
            if c == "\\":
                cur.append(text[i + 1])
                i += 1
            elif c == in_str:
                in_str = None
        elif c == '"':
            in_str = c
            cur.append(c)
        elif c in "({[":
            depth += 1
            cur.append(c)
        elif c in ")}]":
            depth -= 1
            cur.append(c)
        elif c == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    parts.append("".join(cur))
    return [p.strip() for p in parts]


def normalise_c_type(decl, has_name=True):
    """'const char* const* names' -> 'const char* const*'; function pointers -> 'fnptr'."""
    decl = decl.strip()
    if re.search(r"\(\s*\*", decl):
        return "fnptr"
    tokens = re.findall(r"[A-Za-z_][A-Za-z0-9_]*|\*", decl)
    if has_name and len(tokens) >= 2 and tokens[-1] != "*" and tokens[-1] not in C_TYPE_WORDS:
        tokens = tokens[:-1]
    out = ""
    for t in tokens:
        if t == "*":
            out += "*"
        else:
            out += (" " if out else "") + t
    return out


def parse_params(plist):
    plist = plist.strip()
    if plist in ("", "void"):
        return []
    return [normalise_c_type(p) for p in split_top(plist)]


def parse_header(path):
    text = strip_c_comments(open(path, encoding="utf-8").read())
    functions = {}
    for m in re.finditer(r"DESCENT_API\s+([^;]*?)\b([A-Za-z_][A-Za-z0-9_]*)\s*\(", text):
        if m.group(0).startswith("DESCENT_API __"):
            continue
        ret = normalise_c_type(m.group(1), has_name=False)
        name = m.group(2)
        # the parameter list: match parentheses from the opening one
        start = m.end()
        depth, i = 1, start
        while depth:
            depth += {"(": 1, ")": -1}.get(text[i], 0)
            i += 1
        functions[name] = (ret, parse_params(text[start:i - 1]))
    typedefs = {}
    for m in re.finditer(r"typedef\s+([^;(]*?)\(\s*\*\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*\(([^;]*)\)\s*;",
                         text):
        typedefs[m.group(2)] = (normalise_c_type(m.group(1), has_name=False),
                                parse_params(m.group(3)))
    # DESCENT_API also appears in the #define block; those matches have no '(' list of types
    functions = {k: v for k, v in functions.items() if k.startswith("descent_")}
    if not functions:
        raise Failure(f"{path}: no DESCENT_API functions found")
    return functions, typedefs


def strip_julia_comments(text):
    text = re.sub(r"#=.*?=#", " ", text, flags=re.S)
    out = []
    for line in text.split("\n"):
        # drop '#' comments outside string literals
        in_str, cut = False, None
        for i, c in enumerate(line):
            if c == '"' and (i == 0 or line[i - 1] != "\\"):
                in_str = not in_str
            elif c == "#" and not in_str:
                cut = i
                break
        out.append(line if cut is None else line[:cut])
    return "\n".join(out)


def call_args(text, open_paren):
    """The text between text[open_paren] == '(' and its matching ')'."""
    depth, i = 0, open_paren
    while True:
        c = text[i]
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return text[open_paren + 1:i]
        i += 1


def jl_type(t):
    return re.sub(r"\s+", "", t)


def jl_tuple(t, where):
    t = t.strip()
    if not (t.startswith("(") and t.endswith(")")):
        raise Failure(f"{where}: argument types are not a tuple literal: {t}")
    inner = t[1:-1].strip()
    if inner == "":
        return []
    return [jl_type(x) for x in split_top(inner) if x != ""]


def parse_julia(paths):
    ccalls, cfunctions = [], []
    for path in paths:
        raw = open(path, encoding="utf-8").read()
        text = strip_julia_comments(raw)
        for m in re.finditer(r"\bccall\s*\(", text):
            line = text.count("\n", 0, m.start()) + 1
            where = f"{os.path.basename(path)}:{line}"
            args = split_top(call_args(text, m.end() - 1))
            if len(args) < 3:
                raise Failure(f"{where}: ccall with fewer than 3 arguments")
            target = re.fullmatch(r"\(\s*:([A-Za-z_][A-Za-z0-9_]*)\s*,\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)",
                                  args[0])
            if not target:
                raise Failure(f"{where}: ccall target is not (:name, libdescent): {args[0]}")
            if target.group(2) != "libdescent":
                raise Failure(f"{where}: ccall of {target.group(1)} through '{target.group(2)}', "
                              "not libdescent")
            ccalls.append({"name": target.group(1), "ret": jl_type(args[1]),
                           "types": jl_tuple(args[2], where), "nvalues": len(args) - 3,
                           "where": where})
        for m in re.finditer(r"@cfunction\s*\(", text):
            line = text.count("\n", 0, m.start()) + 1
            where = f"{os.path.basename(path)}:{line}"
            args = split_top(call_args(text, m.end() - 1))
            if len(args) != 3:
                raise Failure(f"{where}: @cfunction without (function, Ret, (Args...))")
            cfunctions.append({"func": args[0], "ret": jl_type(args[1]),
                               "types": jl_tuple(args[2], where), "where": where})
        # descent_last_error is thread-local: only its own wrapper may call it
        for m in re.finditer(r"\bdescent_last_error\b", text):
            line_start = text.rfind("\n", 0, m.start()) + 1
            line_text = text[line_start:text.find("\n", m.start())]
            if not re.match(r"\s*descent_last_error\(\)\s*=", line_text) and \
                    ":descent_last_error" not in line_text:
                line = text.count("\n", 0, m.start()) + 1
                raise Failure(f"{os.path.basename(path)}:{line}: descent_last_error used outside "
                              "its wrapper (thread-local: wrong under migrating tasks)")
    return ccalls, cfunctions


def check_types(where, what, c_types, jl_types, table_name="parameter"):
    errors = []
    if len(c_types) != len(jl_types):
        errors.append(f"{where}: {what}: {len(jl_types)} argument types, the header has "
                      f"{len(c_types)} ({', '.join(c_types) or 'void'})")
        return errors
    for k, (c, j) in enumerate(zip(c_types, jl_types), 1):
        allowed = PARAM_TYPES.get(c)
        if allowed is None:
            errors.append(f"{where}: {what}: argument {k}: C type '{c}' has no entry in the type "
                          "table of check_signatures.py")
        elif j not in allowed:
            errors.append(f"{where}: {what}: argument {k}: C '{c}' is Julia "
                          f"{' or '.join(sorted(allowed))}, not {j}")
    return errors


def check_return(where, what, c_ret, jl_ret):
    allowed = RETURN_TYPES.get(c_ret)
    if allowed is None:
        return [f"{where}: {what}: C return type '{c_ret}' has no entry in the type table"]
    if jl_ret not in allowed:
        return [f"{where}: {what}: returns C '{c_ret}', i.e. Julia {' or '.join(sorted(allowed))}, "
                f"not {jl_ret}"]
    return []


def check(header, julia_files):
    functions, typedefs = parse_header(header)
    ccalls, cfunctions = parse_julia(julia_files)
    errors = []
    wrapped = set()
    for c in ccalls:
        name = c["name"]
        if name not in functions:
            errors.append(f"{c['where']}: ccall of {name}, which is not a DESCENT_API function of "
                          "the header")
            continue
        wrapped.add(name)
        c_ret, c_params = functions[name]
        errors += check_return(c["where"], name, c_ret, c["ret"])
        errors += check_types(c["where"], name, c_params, c["types"])
        if c["nvalues"] != len(c["types"]):
            errors.append(f"{c['where']}: {name}: {len(c['types'])} argument types but "
                          f"{c['nvalues']} values passed")
    for name in sorted(set(functions) - wrapped):
        errors.append(f"header function {name} has no ccall wrapper")
    # callbacks: descent_X_fn <-> @cfunction(_X_trampoline, ...)
    by_func = {}
    for cf in cfunctions:
        by_func.setdefault(cf["func"], []).append(cf)
    for tname, (c_ret, c_params) in sorted(typedefs.items()):
        m = re.fullmatch(r"descent_([a-z0-9_]+)_fn", tname)
        tramp = f"_{m.group(1)}_trampoline" if m else None
        if not tramp or tramp not in by_func:
            errors.append(f"callback typedef {tname} has no @cfunction({tramp}, ...)")
            continue
        for cf in by_func.pop(tramp):
            errors += check_return(cf["where"], tname, c_ret, cf["ret"])
            errors += check_types(cf["where"], tname, c_params, cf["types"])
    for func, cfs in sorted(by_func.items()):
        for cf in cfs:
            errors.append(f"{cf['where']}: @cfunction({func}) matches no callback typedef of the "
                          "header (name it _X_trampoline for descent_X_fn)")
    return functions, typedefs, ccalls, cfunctions, errors


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--header", default=DEFAULT_HEADER)
    ap.add_argument("julia_files", nargs="*")
    a = ap.parse_args(argv)
    files = a.julia_files or sorted(glob.glob(os.path.join(HERE, "src", "*.jl")))
    try:
        functions, typedefs, ccalls, cfunctions, errors = check(a.header, files)
    except Failure as e:
        print(f"check_signatures: FAIL: {e}", file=sys.stderr)
        return 1
    for e in errors:
        print(f"check_signatures: FAIL: {e}", file=sys.stderr)
    if errors:
        return 1
    print(f"check_signatures: ok: {len(functions)} header functions, {len(ccalls)} ccalls, "
          f"{len(typedefs)} callback typedefs, {len(cfunctions)} @cfunction trampolines")
    return 0


if __name__ == "__main__":
    sys.exit(main())

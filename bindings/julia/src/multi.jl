# MultiOptimizer (kind "multi"): parameter groups with filters; the muon+adamw split.

"""
    add_group!(multi, kind, config=nothing; kwargs...) -> Int

Adds a group with a new optimizer of `kind` (configured by a JSON string, Dict, NamedTuple or
keywords) and returns its 1-based index.
"""
function add_group!(multi::Optimizer, kind::AbstractString, config=nothing; kwargs...)
    cfg = isempty(kwargs) ? _config_json(config) : _json_object(pairs(kwargs))
    (config !== nothing && !isempty(kwargs)) &&
        throw(ArgumentError("give the configuration either as an argument or as keywords"))
    idx = Ref{Csize_t}(0)
    _check(multi, descent_multi_add_group(multi, String(kind), cfg, idx))
    return Int(idx[]) + 1
end

"""
    group_count(multi) -> Int
"""
function group_count(multi::Optimizer)
    n = Ref{Csize_t}(0)
    _check(multi, descent_multi_group_count(multi, n))
    return Int(n[])
end

"""
    group(multi, i) -> Optimizer

A borrowed handle on group `i` (1-based) for hyperparameters, schedules and reading state. It
belongs to `multi`: `close` on it does nothing, and it is unusable once `multi` is closed.
"""
function group(multi::Optimizer, i::Integer)
    i >= 1 || throw(ArgumentError("group indices are 1-based; got $i"))
    out = Ref{Ptr{Cvoid}}(C_NULL)
    _check(multi, descent_multi_group(multi, i - 1, out))
    return Optimizer(out[], _root(multi))
end

_group_index(i::Integer) =
    i >= 1 ? Csize_t(i - 1) : throw(ArgumentError("group indices are 1-based; got $i"))

"""
    filter_name!(multi, i, glob)     # include parameters whose name matches ('*', '?')
    exclude_name!(multi, i, glob)    # reject parameters whose name matches
    filter_ndim!(multi, i, min, max=-1)   # include by number of dimensions (max < 0: unbounded)
    filter_callback!(f, multi, i)    # include when f(name::String, dims::Tuple) returns true
"""
filter_name!(multi::Optimizer, i::Integer, glob::AbstractString) =
    (_check(multi, descent_multi_filter_name(multi, _group_index(i), String(glob))); multi)
exclude_name!(multi::Optimizer, i::Integer, glob::AbstractString) =
    (_check(multi, descent_multi_exclude_name(multi, _group_index(i), String(glob))); multi)
filter_ndim!(multi::Optimizer, i::Integer, min_ndim::Integer, max_ndim::Integer=-1) =
    (_check(multi, descent_multi_filter_ndim(multi, _group_index(i), Int64(min_ndim),
                                             Int64(max_ndim))); multi)

"""
    filter_callback!(f, multi, i)

`f(name, dims)` decides whether group `i` takes a parameter; `dims` are the Julia dimensions
the parameter was declared with. If `f` throws, the call that evaluated it fails with a
`DescentError` whose `cause` holds the exception.
"""
function filter_callback!(f, multi::Optimizer, i::Integer)
    holder = CallbackHolder(f, nothing)
    GC.@preserve holder begin
        _check(multi, descent_multi_filter_callback(multi, _group_index(i), FILTER_TRAMPOLINE[],
                                                    pointer_from_objref(holder), C_NULL))
    end
    push!(_root(multi).filters, holder)
    return multi
end

"""
    parameter_group(multi, name) -> Int   (1-based; evaluates the filters)
"""
function parameter_group(multi::Optimizer, name::AbstractString)
    g = Ref{Csize_t}(0)
    _check(multi, descent_multi_parameter_group(multi, String(name), g))
    return Int(g[]) + 1
end

"""
    muon_adamw(; muon=nothing, adamw=nothing, adamw_names=nothing) -> Optimizer

The usual split: group 1 is Muon for parameters with ndim >= 2 whose names match none of
`adamw_names` (globs, a vector or a comma-separated string; default
"*embed*,*lm_head*,*head*,*norm*"), group 2 is AdamW for everything else. Configurations are JSON
strings, Dicts or NamedTuples.
"""
function muon_adamw(; muon=nothing, adamw=nothing, adamw_names=nothing)
    names = adamw_names === nothing ? C_NULL :
            adamw_names isa AbstractString ? String(adamw_names) : join(adamw_names, ",")
    out = Ref{Ptr{Cvoid}}(C_NULL)
    err = _error_buffer()
    _check_buffer(descent_multi_create_muon_adamw(_config_json(muon), _config_json(adamw), names,
                                                  out, err, length(err)), err)
    return Optimizer(out[], nothing)
end

# The Optimizer handle, hyperparameters, parameters, updates, state, saving.

mutable struct CallbackHolder
    f::Any       # the Julia function
    error::Any   # a CapturedException left by a failed call of f, until the ccall reports it
end

"""
    ParameterInfo(name, eltype, dims)

A declared parameter as the library holds it (see `parameter_info`): its `name`, `eltype`
(Float32, Float64, Float16 or BF16) and `dims`, the Julia (column-major) dimensions, i.e. the declared shape
reversed (see `add_parameter!`).
"""
struct ParameterInfo
    name::String
    eltype::DataType
    dims::Tuple{Vararg{Int}}
end

"""
    Optimizer(kind; config=nothing, kwargs...)
    Optimizer(f, kind; ...)   # do-block: runs f(opt), then close(opt)

A descent optimizer of `kind` ("sgd", "adamw", "muon", "multi", ...; see `kinds()`), with MLX's
defaults, optionally configured from `config` (a JSON string, a Dict or a NamedTuple) or keyword
arguments (`Optimizer("adamw"; learning_rate=1e-3)`).

The handle is freed by `close(opt)` or, failing that, by a finalizer. An Optimizer may be used by
one task at a time (guard it with a lock if tasks share it); distinct optimizers are independent.
"""
mutable struct Optimizer
    handle::Ptr{Cvoid}
    parent::Union{Nothing,Optimizer}  # the multi optimizer owning a borrowed group handle
    # What parameter_info reported, by index: a cache for the per-step dimension checks, filled
    # from the library on demand (parameters are only ever added and indices never change).
    params::Vector{ParameterInfo}
    # Callback objects, rooted here for as long as the library may call them. free_user_data is
    # always C_NULL: the library's release happens in descent_optimizer_free, possibly from a
    # finalizer, where Julia code must not take locks or yield (ffi-findings.md §5).
    schedules::Dict{UInt,CallbackHolder}  # by the address of the handle they are attached to
    filters::Vector{CallbackHolder}
    function Optimizer(handle::Ptr{Cvoid}, parent::Union{Nothing,Optimizer})
        opt = new(handle, parent, ParameterInfo[], Dict{UInt,CallbackHolder}(), CallbackHolder[])
        parent === nothing && finalizer(_finalize, opt)
        return opt
    end
end

# The finalizer: one ccall, no locks, no task switches (free_user_data is NULL, so no Julia code
# runs inside descent_optimizer_free).
function _finalize(opt::Optimizer)
    h = opt.handle
    opt.handle = C_NULL
    h == C_NULL || descent_optimizer_free(h)
    return nothing
end

"""
    close(opt::Optimizer)

Frees the optimizer now (idempotent). On a group handle (`group(multi, i)`) it does nothing: the
group belongs to its multi optimizer.
"""
function Base.close(opt::Optimizer)
    opt.parent === nothing || return nothing
    _finalize(opt)
    empty!(opt.schedules)
    empty!(opt.filters)
    return nothing
end

Base.isopen(opt::Optimizer) = opt.handle != C_NULL && _root(opt).handle != C_NULL

_root(opt::Optimizer) = opt.parent === nothing ? opt : opt.parent::Optimizer

function _handle(opt::Optimizer)
    isopen(opt) || throw(DescentError(DESCENT_ERR_INVALID_STATE, "the optimizer has been closed"))
    return opt.handle
end

# An Optimizer passed where the C function takes a descent_optimizer*: ccall keeps `opt` rooted
# for the duration of the call, so the finalizer cannot run under it.
Base.cconvert(::Type{Ptr{Cvoid}}, opt::Optimizer) = opt
Base.unsafe_convert(::Type{Ptr{Cvoid}}, opt::Optimizer) = _handle(opt)

function Optimizer(kind::AbstractString; config=nothing, kwargs...)
    out = Ref{Ptr{Cvoid}}(C_NULL)
    err = _error_buffer()
    _check_buffer(descent_optimizer_create(String(kind), out, err, length(err)), err)
    opt = Optimizer(out[], nothing)
    try
        config === nothing || configure!(opt, config)
        isempty(kwargs) || configure!(opt; kwargs...)
    catch
        close(opt)
        rethrow()
    end
    return opt
end

function Optimizer(f::Function, kind::AbstractString; kwargs...)
    opt = Optimizer(kind; kwargs...)
    try
        return f(opt)
    finally
        close(opt)
    end
end

"""
    kind(opt) -> String
"""
kind(opt::Optimizer) = unsafe_string(descent_optimizer_kind(opt))

function Base.show(io::IO, opt::Optimizer)
    if isopen(opt)
        print(io, "Descent.Optimizer(\"", kind(opt), "\"", opt.parent === nothing ? "" : ", group",
              ")")
    else
        print(io, "Descent.Optimizer(closed)")
    end
end

# Throws the DescentError of a failed call on `opt`: the handle's own message (never the
# thread-local descent_last_error), and the Julia exception of a callback that failed it.
function _check(opt::Optimizer, status::Cuint)
    status == DESCENT_OK && return nothing
    msg = unsafe_string(descent_optimizer_last_error(opt))
    throw(DescentError(status, msg, _take_pending!(_root(opt))))
end

function _take_pending!(root::Optimizer)
    found = nothing
    for h in Iterators.flatten((values(root.schedules), root.filters))
        if h.error !== nothing
            found === nothing && (found = h.error)
            h.error = nothing
        end
    end
    return found
end

const KeyLike = Union{AbstractString,Symbol}
_key(k::KeyLike) = String(k)

# ---- Hyperparameters --------------------------------------------------------------------------

"""
    opt[key] = value

Sets a hyperparameter by MLX's name: a `Bool`, an `Integer`, a `Real`, a vector of reals
(e.g. `betas`), a string (a choice such as Muon's `coefficients`) or `nothing` (unsets an
optional one). Invalid values throw a `DescentError` and change nothing.
"""
function Base.setindex!(opt::Optimizer, value::Bool, key::KeyLike)
    _check(opt, descent_optimizer_set_bool(opt, _key(key), value))
    return opt
end
function Base.setindex!(opt::Optimizer, value::Integer, key::KeyLike)
    _check(opt, descent_optimizer_set_int(opt, _key(key), Int64(value)))
    return opt
end
function Base.setindex!(opt::Optimizer, value::Real, key::KeyLike)
    _check(opt, descent_optimizer_set_double(opt, _key(key), Float64(value)))
    return opt
end
function Base.setindex!(opt::Optimizer, value::Union{AbstractVector{<:Real},Tuple{Vararg{Real}}},
                        key::KeyLike)
    v = Float64[x for x in value]
    _check(opt, descent_optimizer_set_doubles(opt, _key(key), v, length(v)))
    return opt
end
function Base.setindex!(opt::Optimizer, value::KeyLike, key::KeyLike)
    _check(opt, descent_optimizer_set_string(opt, _key(key), String(value)))
    return opt
end
function Base.setindex!(opt::Optimizer, ::Nothing, key::KeyLike)
    _check(opt, descent_optimizer_unset(opt, _key(key)))
    return opt
end

"""
    unset!(opt, key)

Unsets an optional hyperparameter (MLX's None); same as `opt[key] = nothing`.
"""
unset!(opt::Optimizer, key::KeyLike) = (opt[key] = nothing; opt)

"""
    hyperparameter_type(opt, key) -> Cuint

One of `Descent.DESCENT_VALUE_*` (`DESCENT_VALUE_NONE` for an unset optional one).
"""
function hyperparameter_type(opt::Optimizer, key::KeyLike)
    t = Ref{Cuint}(0)
    _check(opt, descent_optimizer_hyperparameter_type(opt, _key(key), t))
    return t[]
end

"""
    opt[key] -> Float64 | Int64 | Bool | Vector{Float64} | String | nothing
"""
function Base.getindex(opt::Optimizer, key::KeyLike)
    k = _key(key)
    t = hyperparameter_type(opt, k)
    if t == DESCENT_VALUE_NONE
        return nothing
    elseif t == DESCENT_VALUE_DOUBLE
        d = Ref{Cdouble}(0)
        _check(opt, descent_optimizer_get_double(opt, k, d))
        return d[]
    elseif t == DESCENT_VALUE_INT
        i = Ref{Int64}(0)
        _check(opt, descent_optimizer_get_int(opt, k, i))
        return i[]
    elseif t == DESCENT_VALUE_BOOL
        b = Ref{Bool}(false)
        _check(opt, descent_optimizer_get_bool(opt, k, b))
        return b[]
    elseif t == DESCENT_VALUE_DOUBLE_ARRAY
        n = Ref{Csize_t}(0)
        _check(opt, descent_optimizer_get_doubles(opt, k, C_NULL, 0, n))
        v = Vector{Float64}(undef, Int(n[]))
        _check(opt, descent_optimizer_get_doubles(opt, k, v, length(v), n))
        return v
    elseif t == DESCENT_VALUE_STRING
        n = Ref{Csize_t}(0)
        _check(opt, descent_optimizer_get_string(opt, k, C_NULL, 0, n))
        buf = zeros(UInt8, Int(n[]) + 1)
        _check(opt, descent_optimizer_get_string(opt, k, buf, length(buf), n))
        return String(buf[1:Int(n[])])
    end
    throw(DescentError(DESCENT_ERR_UNSUPPORTED,
                       "hyperparameter '$k' has value type $t, which this binding does not know"))
end

"""
    hyperparameters(opt) -> Vector{String}

The names of the hyperparameters this kind knows.
"""
function hyperparameters(opt::Optimizer)
    n = Ref{Csize_t}(0)
    _check(opt, descent_optimizer_hyperparameter_count(opt, n))
    names = String[]
    for i in 1:Int(n[])
        p = Ref{Ptr{UInt8}}(C_NULL)
        _check(opt, descent_optimizer_hyperparameter_name(opt, i - 1, p))
        push!(names, unsafe_string(p[]))
    end
    return names
end

"""
    configure!(opt, json::AbstractString)
    configure!(opt, config::Union{AbstractDict,NamedTuple})
    configure!(opt; key=value, ...)

Applies several hyperparameters at once, all or nothing (descent_optimizer_configure_json).
"""
configure!(opt::Optimizer, json::AbstractString) =
    (_check(opt, descent_optimizer_configure_json(opt, String(json))); opt)
configure!(opt::Optimizer, config::Union{AbstractDict,NamedTuple}) = configure!(opt, _json(config))
configure!(opt::Optimizer; kwargs...) = configure!(opt, _json_object(pairs(kwargs)))

# A minimal JSON writer for configurations (numbers, bools, strings, nothing, arrays, objects).
_json(::Nothing) = "null"
_json(x::Bool) = x ? "true" : "false"
_json(x::Integer) = string(x)
function _json(x::Real)
    f = Float64(x)
    isfinite(f) || throw(ArgumentError("JSON has no $f"))
    return repr(f)
end
_json(x::Symbol) = _json(String(x))
function _json(s::AbstractString)
    io = IOBuffer()
    print(io, '"')
    for c in s
        if c == '"' || c == '\\'
            print(io, '\\', c)
        elseif c < ' '
            print(io, "\\u", string(UInt32(c), base=16, pad=4))
        else
            print(io, c)
        end
    end
    print(io, '"')
    return String(take!(io))
end
_json(v::Union{AbstractVector,Tuple}) = "[" * join((_json(x) for x in v), ", ") * "]"
_json(d::AbstractDict) = _json_object(d)
_json(nt::NamedTuple) = _json_object(pairs(nt))
_json(x) = throw(ArgumentError("cannot write a $(typeof(x)) as JSON"))
_json_object(kv) = "{" * join((_json(string(k)) * ": " * _json(v) for (k, v) in kv), ", ") * "}"

_config_json(::Nothing) = C_NULL
_config_json(s::AbstractString) = String(s)
_config_json(x) = _json(x)

# ---- Parameters -------------------------------------------------------------------------------

"""
    add_parameter!(opt, name, T, dims...) -> Int
    add_parameter!(opt, name, array) -> Int

Declares a parameter of element type `T` (Float32, Float64, Float16 or BF16) and Julia dimensions `dims`
(column-major), and returns its 1-based index. descent reads shapes row-major, so the shape is
declared reversed: a Julia `m×n` matrix is declared `[n, m]`, its memory is exactly what descent
expects, and shape-aware kinds see its transpose (README.md, "Column-major arrays").
"""
function add_parameter!(opt::Optimizer, name::AbstractString, ::Type{T},
                        dims::Tuple{Vararg{Integer}}) where {T}
    jdims = map(Int, dims)
    shape = Int64[d for d in reverse(jdims)]
    nm = String(name)
    _check(opt, descent_optimizer_add_parameter(opt, nm, dtype_of(T), length(shape), shape))
    return parameter_count(opt)
end
add_parameter!(opt::Optimizer, name::AbstractString, ::Type{T}, dims::Integer...) where {T} =
    add_parameter!(opt, name, T, dims)
add_parameter!(opt::Optimizer, name::AbstractString, a::AbstractArray{T}) where {T} =
    add_parameter!(opt, name, T, size(a))

"""
    parameter_count(opt) -> Int
"""
function parameter_count(opt::Optimizer)
    n = Ref{Csize_t}(0)
    _check(opt, descent_optimizer_parameter_count(opt, n))
    return Int(n[])
end

"""
    parameter_info(opt, i) -> ParameterInfo

Declared parameter `i` (1-based): name, element type and Julia dimensions, read from the library
(descent_optimizer_parameter_info).
"""
function parameter_info(opt::Optimizer, i::Integer)
    i >= 1 || throw(ArgumentError("parameter indices are 1-based; got $i"))
    name = Ref{Ptr{UInt8}}(C_NULL)
    dt = Ref{Cuint}(0)
    nd = Ref{Csize_t}(0)
    shape = zeros(Int64, DESCENT_MAX_NDIM)
    nm = GC.@preserve opt begin  # the name is owned by the handle: copy it while opt lives
        _check(opt, descent_optimizer_parameter_info(opt, i - 1, name, dt, nd, shape,
                                                     length(shape)))
        unsafe_string(name[])
    end
    dims = Tuple(Int(shape[k]) for k in Int(nd[]):-1:1)
    return ParameterInfo(nm, eltype_of(dt[]), dims)
end

# The cache of parameter_info, brought up to date with the library (one ccall when nothing new
# was declared).
function _parameters(opt::Optimizer)
    n = parameter_count(opt)
    for i in length(opt.params)+1:n
        push!(opt.params, parameter_info(opt, i))
    end
    return opt.params
end

"""
    parameter_index(opt, name) -> Int   (1-based)
"""
function parameter_index(opt::Optimizer, name::AbstractString)
    i = Ref{Csize_t}(0)
    _check(opt, descent_optimizer_parameter_index(opt, String(name), i))
    return Int(i[]) + 1
end

"""
    init!(opt)

Allocates the state now (optional; the first update does it).
"""
init!(opt::Optimizer) = (_check(opt, descent_optimizer_init(opt)); opt)

# ---- Updates ----------------------------------------------------------------------------------

function _dense_strides(dims::Tuple)
    s = 1
    out = Int[]
    for d in dims
        push!(out, s)
        s *= d
    end
    return Tuple(out)
end

_is_contiguous(::Array) = true
function _is_contiguous(a::AbstractArray)
    try
        return strides(a) == _dense_strides(size(a))
    catch
        return false
    end
end

# Checks one tensor argument and returns its address.
function _array_pointer(a, what)
    a isa AbstractArray ||
        throw(ArgumentError("$what is a $(typeof(a)), not an array"))
    T = eltype(a)
    (T === Float32 || T === Float64 || T === Float16 || T === BF16) || throw(ArgumentError(
        "$what has element type $T; descent updates Float32, Float64, Float16 and BF16 arrays"))
    _is_contiguous(a) ||
        throw(ArgumentError("$what is not contiguous in memory (pass an Array or a contiguous view)"))
    return Ptr{Cvoid}(pointer(a))
end

function _check_dims(opt::Optimizer, index::Int, p, what)
    index > length(opt.params) && _parameters(opt)        # declared since the last look
    1 <= index <= length(opt.params) || return nothing  # the library reports a bad index
    info = opt.params[index]
    if ndims(p) != 1 && size(p) != info.dims
        throw(DimensionMismatch("$what has size $(size(p)); '$(info.name)' was declared " *
                                "with Julia dimensions $(info.dims)"))
    end
    return nothing
end

# Fills the per-tensor arrays of update/update_indexed. Returns (dtypes, numels, params, grads).
function _tensor_arrays(opt::Optimizer, indices, params, grads)
    n = length(params)
    length(grads) == n ||
        throw(DimensionMismatch("$n parameter arrays but $(length(grads)) gradient arrays"))
    dts = Vector{Cuint}(undef, n)
    numels = Vector{Int64}(undef, n)
    ps = Vector{Ptr{Cvoid}}(undef, n)
    gs = Vector{Ptr{Cvoid}}(undef, n)
    for k in 1:n
        p = params[k]
        g = grads[k]
        ps[k] = _array_pointer(p, "params[$k]")
        gs[k] = _array_pointer(g, "grads[$k]")
        eltype(p) === eltype(g) ||
            throw(ArgumentError("params[$k] is $(eltype(p)) but grads[$k] is $(eltype(g))"))
        length(p) == length(g) ||
            throw(DimensionMismatch("params[$k] has $(length(p)) elements, grads[$k] $(length(g))"))
        indices === nothing || _check_dims(opt, Int(indices[k]), p, "params[$k]")
        dts[k] = dtype_of(eltype(p))
        numels[k] = length(p)
    end
    return dts, numels, ps, gs
end

"""
    update!(opt, params, grads)                  # every declared parameter, in order
    update!(opt, indices, params, grads)         # 1-based indices
    update!(opt, names, params, grads)           # by name
    update!(opt, index::Integer, param, grad)    # one parameter
    update!(opt, params::FlatBuffer, grads::FlatBuffer)

One optimizer step: the step counter advances once and each given parameter array is updated in
place from its gradient. Arrays must be contiguous Float32/Float64/Float16/BF16 arrays with the declared
element type and Julia dimensions (a vector of the right length is also accepted). On error
nothing changes.
"""
function update!(opt::Optimizer, indices::AbstractVector{<:Integer},
                 params::Union{AbstractVector,Tuple}, grads::Union{AbstractVector,Tuple})
    length(indices) == length(params) ||
        throw(DimensionMismatch("$(length(indices)) indices but $(length(params)) arrays"))
    idx = Vector{Csize_t}(undef, length(indices))
    for (k, i) in enumerate(indices)
        i >= 1 || throw(ArgumentError("parameter indices are 1-based; got $i"))
        idx[k] = Csize_t(i - 1)
    end
    GC.@preserve params grads begin
        dts, numels, ps, gs = _tensor_arrays(opt, indices, params, grads)
        _check(opt, descent_optimizer_update_indexed(opt, length(idx), idx, dts, numels, ps, gs))
    end
    return opt
end

function update!(opt::Optimizer, names::AbstractVector{<:AbstractString},
                 params::Union{AbstractVector,Tuple}, grads::Union{AbstractVector,Tuple})
    length(names) == length(params) ||
        throw(DimensionMismatch("$(length(names)) names but $(length(params)) arrays"))
    strs = String[String(s) for s in names]
    for s in strs
        Base.containsnul(s) && throw(ArgumentError("parameter name contains a NUL: $(repr(s))"))
    end
    GC.@preserve strs params grads begin
        ptrs = Ptr{UInt8}[pointer(s) for s in strs]
        idx = [findfirst(p -> p.name == s, opt.params) for s in strs]
        if !all(i -> i !== nothing, idx)                  # declared since the last look?
            _parameters(opt)
            idx = [findfirst(p -> p.name == s, opt.params) for s in strs]
        end
        known = all(i -> i !== nothing, idx)
        dts, numels, ps, gs = _tensor_arrays(opt, known ? idx : nothing, params, grads)
        _check(opt, descent_optimizer_update(opt, length(ptrs), ptrs, dts, numels, ps, gs))
    end
    return opt
end

update!(opt::Optimizer, params::Union{AbstractVector,Tuple}, grads::Union{AbstractVector,Tuple}) =
    update!(opt, collect(1:length(params)), params, grads)

update!(opt::Optimizer, index::Integer, param::AbstractArray, grad::AbstractArray) =
    update!(opt, [index], [param], [grad])

# ---- State ------------------------------------------------------------------------------------

"""
    state_keys(opt) -> Vector{String}

MLX's tree_flatten(optimizer.state) names: "step", "learning_rate", "<param>.<slot>".
"""
function state_keys(opt::Optimizer)
    n = Ref{Csize_t}(0)
    _check(opt, descent_optimizer_state_count(opt, n))
    keys = String[]
    for i in 1:Int(n[])
        p = Ref{Ptr{UInt8}}(C_NULL)
        _check(opt, descent_optimizer_state_key(opt, i - 1, p))
        push!(keys, unsafe_string(p[]))
    end
    return keys
end

"""
    state_info(opt, key) -> (T, dims)

Element type and Julia (column-major, i.e. reversed) dimensions of a state slot.
"""
function state_info(opt::Optimizer, key::KeyLike)
    dt = Ref{Cuint}(0)
    nd = Ref{Csize_t}(0)
    shape = zeros(Int64, DESCENT_MAX_NDIM)
    _check(opt, descent_optimizer_state_info(opt, _key(key), dt, nd, shape, length(shape)))
    dims = Tuple(Int(shape[i]) for i in Int(nd[]):-1:1)
    return eltype_of(dt[]), dims
end

"""
    state(opt, key) -> Array or scalar

A copy of a state slot as a Julia array with reversed dimensions (a scalar for 0-dimensional
slots such as "step" (UInt64) and "learning_rate" (Float32)).
"""
function state(opt::Optimizer, key::KeyLike)
    k = _key(key)
    T, dims = state_info(opt, k)
    a = Array{T}(undef, dims)
    _check(opt, descent_optimizer_state_get(opt, k, dtype_of(T), a, length(a)))
    return isempty(dims) ? a[] : a
end

"""
    state!(opt, key, value)

Copies an array (element type and length of the slot; Julia dimensions) or a scalar into a state
slot. Setting a per-parameter slot initialises the state first.
"""
function state!(opt::Optimizer, key::KeyLike, a::AbstractArray)
    k = _key(key)
    GC.@preserve a begin
        p = _array_pointer_any(a, "the state array")
        _check(opt, descent_optimizer_state_set(opt, k, dtype_of(eltype(a)), p, length(a)))
    end
    return opt
end
function state!(opt::Optimizer, key::KeyLike, x::Real)
    T, dims = state_info(opt, key)
    isempty(dims) || throw(DimensionMismatch("state '$key' has dimensions $dims, not a scalar"))
    return state!(opt, key, fill(convert(T, x)))
end

function _array_pointer_any(a::AbstractArray, what)
    _is_contiguous(a) || throw(ArgumentError("$what is not contiguous in memory"))
    return Ptr{Cvoid}(pointer(a))
end

# ---- Saving and resuming ----------------------------------------------------------------------

"""
    savestate(opt, path)         # safetensors file, MLX-compatible
    savestate(opt) -> Vector{UInt8}
"""
savestate(opt::Optimizer, path::AbstractString) =
    (_check(opt, descent_optimizer_save(opt, String(path))); nothing)
function savestate(opt::Optimizer)
    n = Ref{Csize_t}(0)
    _check(opt, descent_optimizer_save_to_buffer(opt, C_NULL, 0, n))
    buf = Vector{UInt8}(undef, Int(n[]))
    _check(opt, descent_optimizer_save_to_buffer(opt, buf, length(buf), n))
    return resize!(buf, Int(n[]))
end

"""
    loadstate!(opt, path)
    loadstate!(opt, bytes::AbstractVector{UInt8})

Parameters must be declared first. A load that fails changes nothing.
"""
loadstate!(opt::Optimizer, path::AbstractString) =
    (_check(opt, descent_optimizer_load(opt, String(path))); opt)
function loadstate!(opt::Optimizer, bytes::AbstractVector{UInt8})
    buf = bytes isa Vector{UInt8} ? bytes : Vector{UInt8}(bytes)
    _check(opt, descent_optimizer_load_from_buffer(opt, buf, length(buf)))
    return opt
end

# ---- Gradient clipping ------------------------------------------------------------------------

"""
    clip_grad_norm!(grads, max_norm) -> Float64

MLX's clip_grad_norm in place over a collection of gradient arrays; returns the norm before
clipping.
"""
function clip_grad_norm!(grads::Union{AbstractVector,Tuple}, max_norm::Real)
    n = length(grads)
    dts = Vector{Cuint}(undef, n)
    numels = Vector{Int64}(undef, n)
    gs = Vector{Ptr{Cvoid}}(undef, n)
    total = Ref{Cdouble}(0)
    err = _error_buffer()
    GC.@preserve grads begin
        for k in 1:n
            gs[k] = _array_pointer(grads[k], "grads[$k]")
            dts[k] = dtype_of(eltype(grads[k]))
            numels[k] = length(grads[k])
        end
        _check_buffer(descent_clip_grad_norm(n, dts, numels, gs, Float64(max_norm), total, err,
                                             length(err)), err)
    end
    return total[]
end

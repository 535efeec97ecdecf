# The flat layout: every declared parameter in one buffer (descent_optimizer_update_flat).

"""
    flat_size(opt) -> Int        # bytes
    flat_offset(opt, i) -> Int   # byte offset of the 1-based parameter i
"""
function flat_size(opt::Optimizer)
    n = Ref{Csize_t}(0)
    _check(opt, descent_optimizer_flat_size(opt, n))
    return Int(n[])
end
function flat_offset(opt::Optimizer, i::Integer)
    i >= 1 || throw(ArgumentError("parameter indices are 1-based; got $i"))
    n = Ref{Csize_t}(0)
    _check(opt, descent_optimizer_flat_offset(opt, i - 1, n))
    return Int(n[])
end

"""
    FlatBuffer(opt)

A zeroed buffer in `opt`'s flat layout, its start aligned to 64 bytes (DESCENT_FLAT_ALIGNMENT),
with one array view per declared parameter: `fb[i]` has the parameter's element type and Julia
dimensions and aliases the buffer. Use one FlatBuffer for the parameters and one for the
gradients, then `update!(opt, params_fb, grads_fb)` updates everything in one call. The views
keep the memory alive (they are views of the buffer's Vector{UInt8}; Julia's GC does not move
objects, so the alignment holds).
"""
struct FlatBuffer
    mem::Vector{UInt8}
    first::Int                 # 1-based index in mem of the aligned start
    size::Int                  # descent_optimizer_flat_size at creation
    arrays::Vector{AbstractArray}
end

function FlatBuffer(opt::Optimizer)
    infos = _parameters(opt)
    sz = flat_size(opt)
    mem = zeros(UInt8, sz + DESCENT_FLAT_ALIGNMENT)
    addr = UInt(pointer(mem))
    first = 1 + Int((DESCENT_FLAT_ALIGNMENT - addr % DESCENT_FLAT_ALIGNMENT) % DESCENT_FLAT_ALIGNMENT)
    arrays = AbstractArray[]
    for (i, p) in enumerate(infos)
        off = flat_offset(opt, i)
        nbytes = sizeof(p.eltype) * prod(p.dims)
        bytes = view(mem, first+off:first+off+nbytes-1)
        push!(arrays, reshape(reinterpret(p.eltype, bytes), p.dims))
    end
    return FlatBuffer(mem, first, sz, arrays)
end

Base.getindex(fb::FlatBuffer, i::Integer) = fb.arrays[i]
Base.length(fb::FlatBuffer) = length(fb.arrays)
Base.iterate(fb::FlatBuffer, s...) = iterate(fb.arrays, s...)
Base.pointer(fb::FlatBuffer) = Ptr{Cvoid}(pointer(fb.mem, fb.first))
Base.sizeof(fb::FlatBuffer) = fb.size
Base.show(io::IO, fb::FlatBuffer) =
    print(io, "Descent.FlatBuffer(", length(fb), " parameters, ", fb.size, " bytes)")

function update!(opt::Optimizer, params::FlatBuffer, grads::FlatBuffer)
    params.mem === grads.mem &&
        throw(ArgumentError("params and grads must be two different FlatBuffers"))
    params.size == grads.size ||
        throw(DimensionMismatch("FlatBuffers of $(params.size) and $(grads.size) bytes"))
    GC.@preserve params grads begin
        _check(opt, descent_optimizer_update_flat(opt, pointer(params), pointer(grads),
                                                  params.size))
    end
    return opt
end

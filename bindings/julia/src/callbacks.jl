# Schedules and filters written in Julia. The library calls top-level @cfunction trampolines
# with user_data = pointer_from_objref(holder); the holder is rooted in the (root) Optimizer, and
# free_user_data is C_NULL. A trampoline never lets an exception reach the C++ frames: it catches
# it, stores it in the holder (with its backtrace), writes a message into the library's buffer
# and returns a failure status; the ccall that ran the callback fails and `_check` rethrows it as
# the `cause` of the DescentError.

const SCHEDULE_TRAMPOLINE = Ref{Ptr{Cvoid}}(C_NULL)
const FILTER_TRAMPOLINE = Ref{Ptr{Cvoid}}(C_NULL)
# Distributed API (since 1.1), raw level: for descent_collectives_set_allgatherv/_allreduce with
# user_data = pointer_from_objref(holder), holder = CallbackHolder(f, nothing), free_user_data =
# C_NULL. The caller keeps the holder alive as long as the collectives handle and every optimizer
# sharded with it; after a failed call, holder.error holds the exception that f threw.
const ALLGATHERV_TRAMPOLINE = Ref{Ptr{Cvoid}}(C_NULL)
const ALLREDUCE_TRAMPOLINE = Ref{Ptr{Cvoid}}(C_NULL)

# Writes `text` NUL-terminated into message[0, capacity), truncated at a character boundary.
function _write_message(message::Ptr{UInt8}, capacity::Csize_t, text::String)
    (message == C_NULL || capacity == 0) && return nothing
    n = min(ncodeunits(text), Int(capacity) - 1)
    while n > 0 && n < ncodeunits(text) && !isvalid(text, n + 1)
        n -= 1
    end
    GC.@preserve text unsafe_copyto!(message, pointer(text), n)
    unsafe_store!(message, 0x00, n + 1)
    return nothing
end

function _callback_failed(holder::CallbackHolder, ex, bt, message::Ptr{UInt8},
                          capacity::Csize_t)::Cuint
    status = DESCENT_ERR_CALLBACK
    try
        holder.error = CapturedException(ex, bt)
        if ex isa DescentError && ex.status != DESCENT_OK
            status = ex.status
            _write_message(message, capacity, ex.message)
        else
            _write_message(message, capacity, "Julia callback threw " * sprint(showerror, ex))
        end
    catch
        # Even formatting failed: the status alone reports the failure.
    end
    return status
end

# descent_schedule_fn
function _schedule_trampoline(step::UInt64, user_data::Ptr{Cvoid}, value::Ptr{Cdouble},
                              message::Ptr{UInt8}, capacity::Csize_t)::Cuint
    holder = unsafe_pointer_to_objref(user_data)::CallbackHolder
    try
        v = holder.f(step)
        v isa Real || throw(ArgumentError("a schedule must return a real number, not $(typeof(v))"))
        unsafe_store!(value, Float64(v))
        return DESCENT_OK
    catch ex
        return _callback_failed(holder, ex, catch_backtrace(), message, capacity)
    end
end

# descent_filter_fn
function _filter_trampoline(name::Ptr{UInt8}, ndim::Csize_t, shape::Ptr{Int64},
                            user_data::Ptr{Cvoid}, accept::Ptr{Bool}, message::Ptr{UInt8},
                            capacity::Csize_t)::Cuint
    holder = unsafe_pointer_to_objref(user_data)::CallbackHolder
    try
        n = Int(ndim)
        # The declared (row-major) shape, reversed back to the Julia dimensions.
        dims = ntuple(i -> Int(unsafe_load(shape, n - i + 1)), n)
        r = holder.f(unsafe_string(name), dims)
        r isa Bool || throw(ArgumentError("a filter must return a Bool, not $(typeof(r))"))
        unsafe_store!(accept, r)
        return DESCENT_OK
    catch ex
        return _callback_failed(holder, ex, catch_backtrace(), message, capacity)
    end
end

# descent_allgatherv_fn: f(buffer::Ptr{Cvoid}, bytes::Ptr{Csize_t}) (world_size entries)
function _allgatherv_trampoline(buffer::Ptr{Cvoid}, bytes::Ptr{Csize_t}, user_data::Ptr{Cvoid},
                                message::Ptr{UInt8}, capacity::Csize_t)::Cuint
    holder = unsafe_pointer_to_objref(user_data)::CallbackHolder
    try
        holder.f(buffer, bytes)
        return DESCENT_OK
    catch ex
        return _callback_failed(holder, ex, catch_backtrace(), message, capacity)
    end
end

# descent_allreduce_fn: f(values::Ptr{Cdouble}, count::Int, op::Cuint) (DESCENT_REDUCE_SUM/MAX)
function _allreduce_trampoline(values::Ptr{Cdouble}, count::Csize_t, op::Cuint,
                               user_data::Ptr{Cvoid}, message::Ptr{UInt8},
                               capacity::Csize_t)::Cuint
    holder = unsafe_pointer_to_objref(user_data)::CallbackHolder
    try
        holder.f(values, Int(count), op)
        return DESCENT_OK
    catch ex
        return _callback_failed(holder, ex, catch_backtrace(), message, capacity)
    end
end

function _init_trampolines()
    SCHEDULE_TRAMPOLINE[] = @cfunction(_schedule_trampoline, Cuint,
                                       (UInt64, Ptr{Cvoid}, Ptr{Cdouble}, Ptr{UInt8}, Csize_t))
    FILTER_TRAMPOLINE[] = @cfunction(_filter_trampoline, Cuint,
                                     (Ptr{UInt8}, Csize_t, Ptr{Int64}, Ptr{Cvoid}, Ptr{Bool},
                                      Ptr{UInt8}, Csize_t))
    ALLGATHERV_TRAMPOLINE[] = @cfunction(_allgatherv_trampoline, Cuint,
                                         (Ptr{Cvoid}, Ptr{Csize_t}, Ptr{Cvoid}, Ptr{UInt8},
                                          Csize_t))
    ALLREDUCE_TRAMPOLINE[] = @cfunction(_allreduce_trampoline, Cuint,
                                        (Ptr{Cdouble}, Csize_t, Cuint, Ptr{Cvoid}, Ptr{UInt8},
                                         Csize_t))
    return nothing
end

"""
    set_schedule!(opt, spec::AbstractString)   # "cosine:1000:0.0", or JSON
    set_schedule!(opt, f)                      # f(step::UInt64) -> learning rate
    set_schedule!(f, opt)                      # do-block form

Replaces the learning rate by a schedule. A Julia function is evaluated once when attached and
before each update at the step count before the increment (MLX). If it throws, the call that ran
it (the attach, or `update!`) fails with a `DescentError` whose `cause` holds the exception, and
changes nothing. Inside `f` only read-only calls on the optimizer are allowed.
"""
function set_schedule!(opt::Optimizer, spec::AbstractString)
    _check(opt, descent_optimizer_set_schedule(opt, String(spec)))
    delete!(_root(opt).schedules, UInt(_handle(opt)))
    return opt
end
set_schedule!(opt::Optimizer, spec::Union{AbstractDict,NamedTuple}) =
    set_schedule!(opt, _json(spec))

function set_schedule!(opt::Optimizer, f)
    holder = CallbackHolder(f, nothing)
    status = GC.@preserve holder descent_optimizer_set_schedule_callback(
        opt, SCHEDULE_TRAMPOLINE[], pointer_from_objref(holder), C_NULL)
    if status != DESCENT_OK
        # The library did not keep the callback; the holder's error is this call's cause.
        msg = unsafe_string(descent_optimizer_last_error(opt))
        throw(DescentError(status, msg, holder.error))
    end
    _root(opt).schedules[UInt(_handle(opt))] = holder
    return opt
end
set_schedule!(f::Function, opt::Optimizer) = set_schedule!(opt, f)

"""
    clear_schedule!(opt)

Removes the schedule; the learning rate keeps its last value.
"""
function clear_schedule!(opt::Optimizer)
    _check(opt, descent_optimizer_clear_schedule(opt))
    delete!(_root(opt).schedules, UInt(_handle(opt)))
    return opt
end

"""
    schedule_value(spec, step; init_lr=0.0) -> Float64

Evaluates a string or JSON schedule at `step` without an optimizer.
"""
function schedule_value(spec::AbstractString, step::Integer; init_lr::Real=0.0)
    out = Ref{Cdouble}(0)
    err = _error_buffer()
    _check_buffer(descent_schedule_value(String(spec), Float64(init_lr), UInt64(step), out, err,
                                         length(err)), err)
    return out[]
end

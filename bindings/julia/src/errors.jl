"""
    DescentError(status, message[, cause])

A failed libdescent call. `status` is the library's `Cuint` status code (compare with the
`Descent.DESCENT_ERR_*` constants; codes newer than this binding are kept as they are), `message`
the library's message for that call. When the failure came from a Julia callback that threw,
`cause` is a `CapturedException` holding the original exception and its backtrace
(`err.cause.ex`); otherwise `nothing`.

A callback may itself `throw(DescentError(status, message))` to fail the call with that status.
"""
struct DescentError <: Exception
    status::Cuint
    message::String
    cause::Any
end
DescentError(status::Integer, message::AbstractString) =
    DescentError(Cuint(status), String(message), nothing)

function Base.showerror(io::IO, e::DescentError)
    print(io, "DescentError: ", isempty(e.message) ? status_name(e.status) : e.message)
    if e.cause !== nothing
        print(io, "\ncaused by: ")
        showerror(io, e.cause)
    end
end

# A caller error buffer for handle-less calls (DESCENT_ERROR_CAPACITY bytes hold any message).
function _error_buffer()
    buf = zeros(UInt8, DESCENT_ERROR_CAPACITY)
    return buf
end

function _buffer_message(buf::Vector{UInt8})
    n = something(findfirst(==(0x00), buf), length(buf) + 1) - 1
    return String(buf[1:n])
end

# Throws for a failed handle-less call whose message is in `buf`.
function _check_buffer(status::Cuint, buf::Vector{UInt8})
    status == DESCENT_OK && return nothing
    throw(DescentError(status, _buffer_message(buf), nothing))
end

# Values of the header's enums and macros. Statuses, dtypes and value types are plain `Cuint`s
# (the library may return codes this file does not know; an @enum would throw on them).

const DESCENT_VERSION_MAJOR = 1
const DESCENT_ERROR_CAPACITY = 1024
const DESCENT_MAX_NDIM = 16
const DESCENT_FLAT_ALIGNMENT = 64

# descent_status
const DESCENT_OK = Cuint(0)
const DESCENT_ERR_NULL_ARGUMENT = Cuint(1)
const DESCENT_ERR_INVALID_ARGUMENT = Cuint(2)
const DESCENT_ERR_UNKNOWN_KIND = Cuint(3)
const DESCENT_ERR_UNKNOWN_KEY = Cuint(4)
const DESCENT_ERR_WRONG_TYPE = Cuint(5)
const DESCENT_ERR_OUT_OF_RANGE = Cuint(6)
const DESCENT_ERR_DTYPE_MISMATCH = Cuint(7)
const DESCENT_ERR_SHAPE_MISMATCH = Cuint(8)
const DESCENT_ERR_INVALID_STATE = Cuint(9)
const DESCENT_ERR_PARSE = Cuint(10)
const DESCENT_ERR_BUFFER_TOO_SMALL = Cuint(11)
const DESCENT_ERR_IO = Cuint(12)
const DESCENT_ERR_CORRUPT = Cuint(13)
const DESCENT_ERR_OUT_OF_MEMORY = Cuint(14)
const DESCENT_ERR_UNSUPPORTED = Cuint(15)
const DESCENT_ERR_DUPLICATE = Cuint(16)
const DESCENT_ERR_CALLBACK = Cuint(17)
const DESCENT_ERR_INTERNAL = Cuint(99)

# descent_dtype
const DESCENT_FLOAT32 = Cuint(1)
const DESCENT_FLOAT64 = Cuint(2)
const DESCENT_BFLOAT16 = Cuint(3)
const DESCENT_FLOAT16 = Cuint(4)
const DESCENT_UINT64 = Cuint(5)

# descent_value_type
const DESCENT_VALUE_NONE = Cuint(0)
const DESCENT_VALUE_DOUBLE = Cuint(1)
const DESCENT_VALUE_INT = Cuint(2)
const DESCENT_VALUE_BOOL = Cuint(3)
const DESCENT_VALUE_DOUBLE_ARRAY = Cuint(4)
const DESCENT_VALUE_STRING = Cuint(5)

"""
    status_name(status) -> String

The library's name of a status code ("DESCENT_ERR_UNKNOWN_KEY", ...), also for codes newer than
this binding.
"""
status_name(status::Integer) = unsafe_string(descent_status_name(Cuint(status)))

"""
    dtype_name(dtype) -> String
"""
dtype_name(dtype::Integer) = unsafe_string(descent_dtype_name(Cuint(dtype)))

"""
    BF16

bfloat16 held as its 16 bits (`DESCENT_BFLOAT16`; Julia has `Float16` but no bfloat16). The
library does the arithmetic; `BF16(x::Float32)` rounds to nearest even (a NaN becomes 0x7FC0),
`Float32(b)` widens exactly, `reinterpret(UInt16, b)` gives the bits. How the state of a
half-precision parameter is kept is the `state_precision` hyperparameter ("float32", "master",
"param").
"""
primitive type BF16 16 end

function BF16(x::Float32)
    u = reinterpret(UInt32, x)
    (u & 0x7fffffff) > 0x7f800000 && return reinterpret(BF16, 0x7fc0)
    return reinterpret(BF16, ((u + 0x00007fff + ((u >> 16) & 0x1)) >> 16) % UInt16)
end
BF16(x::Real) = BF16(Float32(x))
Base.Float32(b::BF16) = reinterpret(Float32, UInt32(reinterpret(UInt16, b)) << 16)
Base.Float64(b::BF16) = Float64(Float32(b))
Base.convert(::Type{BF16}, x::Real) = BF16(x)
Base.convert(::Type{Float32}, b::BF16) = Float32(b)
Base.zero(::Type{BF16}) = reinterpret(BF16, 0x0000)
Base.show(io::IO, b::BF16) = print(io, "BF16(", Float32(b), ")")

# Julia element type <-> descent_dtype.
dtype_of(::Type{Float32}) = DESCENT_FLOAT32
dtype_of(::Type{Float64}) = DESCENT_FLOAT64
dtype_of(::Type{Float16}) = DESCENT_FLOAT16
dtype_of(::Type{BF16}) = DESCENT_BFLOAT16
dtype_of(::Type{UInt64}) = DESCENT_UINT64
dtype_of(::Type{T}) where {T} = throw(ArgumentError(
    "descent has no dtype for element type $T (use Float32, Float64, Float16 or Descent.BF16)"))

function eltype_of(dtype::Cuint)
    dtype == DESCENT_FLOAT32 && return Float32
    dtype == DESCENT_FLOAT64 && return Float64
    dtype == DESCENT_FLOAT16 && return Float16
    dtype == DESCENT_BFLOAT16 && return BF16
    dtype == DESCENT_UINT64 && return UInt64
    throw(ArgumentError("dtype $(dtype) ($(dtype_name(dtype))) has no Julia element type here"))
end

"""
    kinds() -> Vector{String}

The names of the optimizer kinds `Optimizer(kind)` accepts, in the library's order ("multi" last),
from the library (descent_kind_count / descent_kind_name).
"""
kinds() = String[unsafe_string(descent_kind_name(i)) for i in 0:Int(descent_kind_count())-1]

# descent_reduce_op (since 1.1)
const DESCENT_REDUCE_SUM = Cuint(1)
const DESCENT_REDUCE_MAX = Cuint(2)

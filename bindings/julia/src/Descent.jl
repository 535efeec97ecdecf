# Descent.jl: Julia bindings for libdescent (include/descent/descent.h, C ABI 1.0).
#
# The library path is read from ENV["DESCENT_LIBRARY"] when the module is loaded (default: the
# SONAME "libdescent.so.1", found through the usual dynamic-linker search). The module opts out of
# precompilation so that the variable is read at every load rather than baked into a cache file.
__precompile__(false)

module Descent

export DescentError, Optimizer, FlatBuffer, ParameterInfo, BF16, configure!, add_parameter!,
       parameter_count, parameter_index, parameter_info, init!, update!, hyperparameters,
       hyperparameter_type, unset!, state_keys, state_info, state, state!, savestate,
       loadstate!, set_schedule!, clear_schedule!, schedule_value, add_group!, group_count,
       group, filter_name!, filter_ndim!, filter_callback!, exclude_name!, parameter_group,
       muon_adamw, clip_grad_norm!, kind, kinds, set_num_threads!, num_threads

const libdescent = get(ENV, "DESCENT_LIBRARY", "libdescent.so.1")

include("capi.jl")
include("constants.jl")
include("errors.jl")
include("optimizer.jl")
include("callbacks.jl")
include("flat.jl")
include("multi.jl")
include("threads.jl")

function __init__()
    _init_trampolines()
    v = descent_version_number()
    if v ÷ 10000 != DESCENT_VERSION_MAJOR
        error("Descent.jl needs libdescent $(DESCENT_VERSION_MAJOR).x; $(libdescent) is " *
              unsafe_string(descent_version_string()))
    end
    return nothing
end

"""
    version() -> VersionNumber

The version of the loaded libdescent.
"""
version() = VersionNumber(unsafe_string(descent_version_string()))

end # module

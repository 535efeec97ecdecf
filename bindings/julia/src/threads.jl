# Thread settings (C ABI 1.1). The split of a step over threads never changes a result.

"""
    set_num_threads!(n)        # process-wide; 0 restores the default
    set_num_threads!(opt, n)   # this optimizer; 0 follows the process-wide count

Sets how many threads the elementwise optimizers split a step over (the library's pool; not
Julia's threads). The optimizer's setting is not a hyperparameter and is not saved in checkpoints;
on a `"multi"` optimizer it sets every group, on a group only that group. A negative `n` is an
`ArgumentError`; a count the library refuses (above its maximum) a `DescentError`
(`DESCENT_ERR_OUT_OF_RANGE`), and the setting stays as it was.
"""
function set_num_threads!(n::Integer)
    n >= 0 || throw(ArgumentError("num_threads must be >= 0, not $n"))
    err = _error_buffer()
    _check_buffer(descent_set_num_threads(Csize_t(n), err, length(err)), err)
    return nothing
end

function set_num_threads!(opt::Optimizer, n::Integer)
    n >= 0 || throw(ArgumentError("num_threads must be >= 0, not $n"))
    _check(opt, descent_optimizer_set_num_threads(opt, Csize_t(n)))
    return opt
end

"""
    num_threads() -> Int        # the process-wide count in effect (at least 1)
    num_threads(opt) -> Int     # this optimizer's setting (0: follows the process-wide count)
"""
function num_threads()
    out = Ref{Csize_t}(0)
    err = _error_buffer()
    _check_buffer(descent_get_num_threads(out, err, length(err)), err)
    return Int(out[])
end

function num_threads(opt::Optimizer)
    out = Ref{Csize_t}(0)
    _check(opt, descent_optimizer_get_num_threads(opt, out))
    return Int(out[])
end

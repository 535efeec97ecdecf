# The raw C ABI of include/descent/descent.h, one Julia function per C function, same name, same
# argument order. Every `ccall` of the package is in this file; bindings/julia/check_signatures.py
# compares each one with the header in CI. Type map (docs: bindings/julia/README.md):
#   descent_status / descent_dtype / descent_value_type / unsigned -> Cuint (never @enum)
#   size_t -> Csize_t (also returned), int64_t -> Int64, uint64_t -> UInt64, double -> Cdouble, bool -> Bool
#   const char* (in) -> Cstring, const char* (returned) -> Ptr{UInt8}, char* buffers -> Ptr{UInt8}
#   descent_optimizer* -> Ptr{Cvoid} (an `Optimizer` converts itself and is rooted by ccall)
#   descent_optimizer** -> Ref{Ptr{Cvoid}}, T* out -> Ref{T} or Ptr{T}, callbacks -> Ptr{Cvoid}

# ---- Library information ----
descent_version_number() = ccall((:descent_version_number, libdescent), Cuint, ())
descent_version_string() = ccall((:descent_version_string, libdescent), Ptr{UInt8}, ())
descent_status_name(status) = ccall((:descent_status_name, libdescent), Ptr{UInt8}, (Cuint,), status)
descent_dtype_name(dtype) = ccall((:descent_dtype_name, libdescent), Ptr{UInt8}, (Cuint,), dtype)
descent_kind_count() = ccall((:descent_kind_count, libdescent), Csize_t, ())
descent_kind_name(index) = ccall((:descent_kind_name, libdescent), Ptr{UInt8}, (Csize_t,), index)
# Wrapped for completeness only: thread-local, wrong under migrating tasks. Nothing calls it.
descent_last_error() = ccall((:descent_last_error, libdescent), Ptr{UInt8}, ())

# ---- Lifecycle ----
descent_optimizer_create(kind, out, error, capacity) =
    ccall((:descent_optimizer_create, libdescent), Cuint,
          (Cstring, Ref{Ptr{Cvoid}}, Ptr{UInt8}, Csize_t), kind, out, error, capacity)
descent_optimizer_free(opt) =
    ccall((:descent_optimizer_free, libdescent), Cvoid, (Ptr{Cvoid},), opt)
descent_optimizer_kind(opt) =
    ccall((:descent_optimizer_kind, libdescent), Ptr{UInt8}, (Ptr{Cvoid},), opt)
descent_optimizer_last_error(opt) =
    ccall((:descent_optimizer_last_error, libdescent), Ptr{UInt8}, (Ptr{Cvoid},), opt)

# ---- Hyperparameters ----
descent_optimizer_set_double(opt, key, value) =
    ccall((:descent_optimizer_set_double, libdescent), Cuint,
          (Ptr{Cvoid}, Cstring, Cdouble), opt, key, value)
descent_optimizer_set_int(opt, key, value) =
    ccall((:descent_optimizer_set_int, libdescent), Cuint,
          (Ptr{Cvoid}, Cstring, Int64), opt, key, value)
descent_optimizer_set_bool(opt, key, value) =
    ccall((:descent_optimizer_set_bool, libdescent), Cuint,
          (Ptr{Cvoid}, Cstring, Bool), opt, key, value)
descent_optimizer_set_doubles(opt, key, values, count) =
    ccall((:descent_optimizer_set_doubles, libdescent), Cuint,
          (Ptr{Cvoid}, Cstring, Ptr{Cdouble}, Csize_t), opt, key, values, count)
descent_optimizer_set_string(opt, key, value) =
    ccall((:descent_optimizer_set_string, libdescent), Cuint,
          (Ptr{Cvoid}, Cstring, Cstring), opt, key, value)
descent_optimizer_unset(opt, key) =
    ccall((:descent_optimizer_unset, libdescent), Cuint, (Ptr{Cvoid}, Cstring), opt, key)
descent_optimizer_get_double(opt, key, out) =
    ccall((:descent_optimizer_get_double, libdescent), Cuint,
          (Ptr{Cvoid}, Cstring, Ref{Cdouble}), opt, key, out)
descent_optimizer_get_int(opt, key, out) =
    ccall((:descent_optimizer_get_int, libdescent), Cuint,
          (Ptr{Cvoid}, Cstring, Ref{Int64}), opt, key, out)
descent_optimizer_get_bool(opt, key, out) =
    ccall((:descent_optimizer_get_bool, libdescent), Cuint,
          (Ptr{Cvoid}, Cstring, Ref{Bool}), opt, key, out)
descent_optimizer_get_doubles(opt, key, out, capacity, count) =
    ccall((:descent_optimizer_get_doubles, libdescent), Cuint,
          (Ptr{Cvoid}, Cstring, Ptr{Cdouble}, Csize_t, Ref{Csize_t}),
          opt, key, out, capacity, count)
descent_optimizer_get_string(opt, key, out, capacity, length) =
    ccall((:descent_optimizer_get_string, libdescent), Cuint,
          (Ptr{Cvoid}, Cstring, Ptr{UInt8}, Csize_t, Ref{Csize_t}),
          opt, key, out, capacity, length)
descent_optimizer_hyperparameter_count(opt, out) =
    ccall((:descent_optimizer_hyperparameter_count, libdescent), Cuint,
          (Ptr{Cvoid}, Ref{Csize_t}), opt, out)
descent_optimizer_hyperparameter_name(opt, index, out) =
    ccall((:descent_optimizer_hyperparameter_name, libdescent), Cuint,
          (Ptr{Cvoid}, Csize_t, Ref{Ptr{UInt8}}), opt, index, out)
descent_optimizer_hyperparameter_type(opt, key, out) =
    ccall((:descent_optimizer_hyperparameter_type, libdescent), Cuint,
          (Ptr{Cvoid}, Cstring, Ref{Cuint}), opt, key, out)
descent_optimizer_configure_json(opt, json) =
    ccall((:descent_optimizer_configure_json, libdescent), Cuint,
          (Ptr{Cvoid}, Cstring), opt, json)

# ---- Parameters ----
descent_optimizer_add_parameter(opt, name, dtype, ndim, shape) =
    ccall((:descent_optimizer_add_parameter, libdescent), Cuint,
          (Ptr{Cvoid}, Cstring, Cuint, Csize_t, Ptr{Int64}), opt, name, dtype, ndim, shape)
descent_optimizer_parameter_count(opt, out) =
    ccall((:descent_optimizer_parameter_count, libdescent), Cuint,
          (Ptr{Cvoid}, Ref{Csize_t}), opt, out)
descent_optimizer_parameter_info(opt, index, name, dtype, ndim, shape, capacity) =
    ccall((:descent_optimizer_parameter_info, libdescent), Cuint,
          (Ptr{Cvoid}, Csize_t, Ref{Ptr{UInt8}}, Ref{Cuint}, Ref{Csize_t}, Ptr{Int64}, Csize_t),
          opt, index, name, dtype, ndim, shape, capacity)
descent_optimizer_parameter_index(opt, name, out) =
    ccall((:descent_optimizer_parameter_index, libdescent), Cuint,
          (Ptr{Cvoid}, Cstring, Ref{Csize_t}), opt, name, out)
descent_optimizer_init(opt) =
    ccall((:descent_optimizer_init, libdescent), Cuint, (Ptr{Cvoid},), opt)

# ---- Updates ----
descent_optimizer_update(opt, count, names, dtypes, numels, params, grads) =
    ccall((:descent_optimizer_update, libdescent), Cuint,
          (Ptr{Cvoid}, Csize_t, Ptr{Ptr{UInt8}}, Ptr{Cuint}, Ptr{Int64}, Ptr{Ptr{Cvoid}},
           Ptr{Ptr{Cvoid}}),
          opt, count, names, dtypes, numels, params, grads)
descent_optimizer_update_indexed(opt, count, indices, dtypes, numels, params, grads) =
    ccall((:descent_optimizer_update_indexed, libdescent), Cuint,
          (Ptr{Cvoid}, Csize_t, Ptr{Csize_t}, Ptr{Cuint}, Ptr{Int64}, Ptr{Ptr{Cvoid}},
           Ptr{Ptr{Cvoid}}),
          opt, count, indices, dtypes, numels, params, grads)
descent_optimizer_flat_offset(opt, index, byte_offset) =
    ccall((:descent_optimizer_flat_offset, libdescent), Cuint,
          (Ptr{Cvoid}, Csize_t, Ref{Csize_t}), opt, index, byte_offset)
descent_optimizer_flat_size(opt, bytes) =
    ccall((:descent_optimizer_flat_size, libdescent), Cuint,
          (Ptr{Cvoid}, Ref{Csize_t}), opt, bytes)
descent_optimizer_update_flat(opt, params, grads, size) =
    ccall((:descent_optimizer_update_flat, libdescent), Cuint,
          (Ptr{Cvoid}, Ptr{Cvoid}, Ptr{Cvoid}, Csize_t), opt, params, grads, size)

# ---- State ----
descent_optimizer_state_count(opt, out) =
    ccall((:descent_optimizer_state_count, libdescent), Cuint,
          (Ptr{Cvoid}, Ref{Csize_t}), opt, out)
descent_optimizer_state_key(opt, index, out) =
    ccall((:descent_optimizer_state_key, libdescent), Cuint,
          (Ptr{Cvoid}, Csize_t, Ref{Ptr{UInt8}}), opt, index, out)
descent_optimizer_state_info(opt, key, dtype, ndim, shape, capacity) =
    ccall((:descent_optimizer_state_info, libdescent), Cuint,
          (Ptr{Cvoid}, Cstring, Ref{Cuint}, Ref{Csize_t}, Ptr{Int64}, Csize_t),
          opt, key, dtype, ndim, shape, capacity)
descent_optimizer_state_get(opt, key, dtype, out, numel) =
    ccall((:descent_optimizer_state_get, libdescent), Cuint,
          (Ptr{Cvoid}, Cstring, Cuint, Ptr{Cvoid}, Int64), opt, key, dtype, out, numel)
descent_optimizer_state_set(opt, key, dtype, data, numel) =
    ccall((:descent_optimizer_state_set, libdescent), Cuint,
          (Ptr{Cvoid}, Cstring, Cuint, Ptr{Cvoid}, Int64), opt, key, dtype, data, numel)

# ---- Schedules ----
descent_optimizer_set_schedule(opt, spec) =
    ccall((:descent_optimizer_set_schedule, libdescent), Cuint, (Ptr{Cvoid}, Cstring), opt, spec)
descent_optimizer_set_schedule_callback(opt, fn, user_data, free_user_data) =
    ccall((:descent_optimizer_set_schedule_callback, libdescent), Cuint,
          (Ptr{Cvoid}, Ptr{Cvoid}, Ptr{Cvoid}, Ptr{Cvoid}), opt, fn, user_data, free_user_data)
descent_optimizer_clear_schedule(opt) =
    ccall((:descent_optimizer_clear_schedule, libdescent), Cuint, (Ptr{Cvoid},), opt)
descent_schedule_value(spec, init_lr, step, out, error, capacity) =
    ccall((:descent_schedule_value, libdescent), Cuint,
          (Cstring, Cdouble, UInt64, Ref{Cdouble}, Ptr{UInt8}, Csize_t),
          spec, init_lr, step, out, error, capacity)

# ---- Gradient clipping ----
descent_clip_grad_norm(count, dtypes, numels, grads, max_norm, total_norm, error, capacity) =
    ccall((:descent_clip_grad_norm, libdescent), Cuint,
          (Csize_t, Ptr{Cuint}, Ptr{Int64}, Ptr{Ptr{Cvoid}}, Cdouble, Ref{Cdouble}, Ptr{UInt8},
           Csize_t),
          count, dtypes, numels, grads, max_norm, total_norm, error, capacity)

# ---- Saving and resuming ----
descent_optimizer_save(opt, path) =
    ccall((:descent_optimizer_save, libdescent), Cuint, (Ptr{Cvoid}, Cstring), opt, path)
descent_optimizer_load(opt, path) =
    ccall((:descent_optimizer_load, libdescent), Cuint, (Ptr{Cvoid}, Cstring), opt, path)
descent_optimizer_save_to_buffer(opt, buf, capacity, size) =
    ccall((:descent_optimizer_save_to_buffer, libdescent), Cuint,
          (Ptr{Cvoid}, Ptr{Cvoid}, Csize_t, Ref{Csize_t}), opt, buf, capacity, size)
descent_optimizer_load_from_buffer(opt, buf, size) =
    ccall((:descent_optimizer_load_from_buffer, libdescent), Cuint,
          (Ptr{Cvoid}, Ptr{Cvoid}, Csize_t), opt, buf, size)

# ---- MultiOptimizer ----
descent_multi_add_group(multi, kind, config_json, index) =
    ccall((:descent_multi_add_group, libdescent), Cuint,
          (Ptr{Cvoid}, Cstring, Cstring, Ref{Csize_t}), multi, kind, config_json, index)
descent_multi_group_count(multi, out) =
    ccall((:descent_multi_group_count, libdescent), Cuint, (Ptr{Cvoid}, Ref{Csize_t}), multi, out)
descent_multi_group(multi, index, out) =
    ccall((:descent_multi_group, libdescent), Cuint,
          (Ptr{Cvoid}, Csize_t, Ref{Ptr{Cvoid}}), multi, index, out)
descent_multi_filter_name(multi, index, glob) =
    ccall((:descent_multi_filter_name, libdescent), Cuint,
          (Ptr{Cvoid}, Csize_t, Cstring), multi, index, glob)
descent_multi_filter_ndim(multi, index, min_ndim, max_ndim) =
    ccall((:descent_multi_filter_ndim, libdescent), Cuint,
          (Ptr{Cvoid}, Csize_t, Int64, Int64), multi, index, min_ndim, max_ndim)
descent_multi_filter_callback(multi, index, fn, user_data, free_user_data) =
    ccall((:descent_multi_filter_callback, libdescent), Cuint,
          (Ptr{Cvoid}, Csize_t, Ptr{Cvoid}, Ptr{Cvoid}, Ptr{Cvoid}),
          multi, index, fn, user_data, free_user_data)
descent_multi_exclude_name(multi, index, glob) =
    ccall((:descent_multi_exclude_name, libdescent), Cuint,
          (Ptr{Cvoid}, Csize_t, Cstring), multi, index, glob)
descent_multi_parameter_group(multi, name, out) =
    ccall((:descent_multi_parameter_group, libdescent), Cuint,
          (Ptr{Cvoid}, Cstring, Ref{Csize_t}), multi, name, out)
descent_multi_create_muon_adamw(muon_config_json, adamw_config_json, adamw_names, out, error,
                                capacity) =
    ccall((:descent_multi_create_muon_adamw, libdescent), Cuint,
          (Cstring, Cstring, Cstring, Ref{Ptr{Cvoid}}, Ptr{UInt8}, Csize_t),
          muon_config_json, adamw_config_json, adamw_names, out, error, capacity)

# ---- Distributed: collectives and sharded optimizer state (since 1.1; raw level only) ----
descent_collectives_create(rank, world_size, out, error, capacity) =
    ccall((:descent_collectives_create, libdescent), Cuint,
          (Csize_t, Csize_t, Ref{Ptr{Cvoid}}, Ptr{UInt8}, Csize_t),
          rank, world_size, out, error, capacity)
descent_collectives_free(coll) =
    ccall((:descent_collectives_free, libdescent), Cvoid, (Ptr{Cvoid},), coll)
descent_collectives_rank(coll, rank, world_size, error, capacity) =
    ccall((:descent_collectives_rank, libdescent), Cuint,
          (Ptr{Cvoid}, Ref{Csize_t}, Ref{Csize_t}, Ptr{UInt8}, Csize_t),
          coll, rank, world_size, error, capacity)
descent_collectives_set_allgatherv(coll, fn, user_data, free_user_data, error, capacity) =
    ccall((:descent_collectives_set_allgatherv, libdescent), Cuint,
          (Ptr{Cvoid}, Ptr{Cvoid}, Ptr{Cvoid}, Ptr{Cvoid}, Ptr{UInt8}, Csize_t),
          coll, fn, user_data, free_user_data, error, capacity)
descent_collectives_set_allreduce(coll, fn, user_data, free_user_data, error, capacity) =
    ccall((:descent_collectives_set_allreduce, libdescent), Cuint,
          (Ptr{Cvoid}, Ptr{Cvoid}, Ptr{Cvoid}, Ptr{Cvoid}, Ptr{UInt8}, Csize_t),
          coll, fn, user_data, free_user_data, error, capacity)
descent_collectives_clip_grad_norm(coll, count, dtypes, numels, grads, max_norm, total_norm, error,
                                   capacity) =
    ccall((:descent_collectives_clip_grad_norm, libdescent), Cuint,
          (Ptr{Cvoid}, Csize_t, Ptr{Cuint}, Ptr{Int64}, Ptr{Ptr{Cvoid}}, Cdouble, Ref{Cdouble},
           Ptr{UInt8}, Csize_t),
          coll, count, dtypes, numels, grads, max_norm, total_norm, error, capacity)
descent_optimizer_shard(opt, coll) =
    ccall((:descent_optimizer_shard, libdescent), Cuint, (Ptr{Cvoid}, Ptr{Cvoid}), opt, coll)
descent_optimizer_shard_info(opt, sharded, rank, world_size) =
    ccall((:descent_optimizer_shard_info, libdescent), Cuint,
          (Ptr{Cvoid}, Ref{Bool}, Ref{Csize_t}, Ref{Csize_t}), opt, sharded, rank, world_size)
descent_optimizer_state_bytes(opt, state_bytes, scratch_bytes) =
    ccall((:descent_optimizer_state_bytes, libdescent), Cuint,
          (Ptr{Cvoid}, Ref{Csize_t}, Ref{Csize_t}), opt, state_bytes, scratch_bytes)
descent_optimizer_save_gathered(opt, path) =
    ccall((:descent_optimizer_save_gathered, libdescent), Cuint, (Ptr{Cvoid}, Cstring), opt, path)
descent_optimizer_load_gathered(opt, path) =
    ccall((:descent_optimizer_load_gathered, libdescent), Cuint, (Ptr{Cvoid}, Cstring), opt, path)
descent_optimizer_save_sharded(opt, dir) =
    ccall((:descent_optimizer_save_sharded, libdescent), Cuint, (Ptr{Cvoid}, Cstring), opt, dir)
descent_optimizer_load_sharded(opt, dir) =
    ccall((:descent_optimizer_load_sharded, libdescent), Cuint, (Ptr{Cvoid}, Cstring), opt, dir)

# ---- Threads (since 1.1) ----
descent_set_num_threads(n, error, capacity) =
    ccall((:descent_set_num_threads, libdescent), Cuint, (Csize_t, Ptr{UInt8}, Csize_t),
          n, error, capacity)
descent_get_num_threads(out, error, capacity) =
    ccall((:descent_get_num_threads, libdescent), Cuint, (Ref{Csize_t}, Ptr{UInt8}, Csize_t),
          out, error, capacity)
descent_optimizer_set_num_threads(opt, n) =
    ccall((:descent_optimizer_set_num_threads, libdescent), Cuint, (Ptr{Cvoid}, Csize_t), opt, n)
descent_optimizer_get_num_threads(opt, out) =
    ccall((:descent_optimizer_get_num_threads, libdescent), Cuint,
          (Ptr{Cvoid}, Ref{Csize_t}), opt, out)

/* The pinned layout of every public struct of the 1.0 ABI: each field with
 * the offset it must have. A field's offset may never change; a struct
 * grows only by appending fields in units of 8 bytes. Used by
 * tests/unit/test_structs.c (which checks the offsets, and that fields are
 * contiguous, so no struct has padding) and by tests/abi/layout.c (which
 * prints them for the Python binding's check). */
#ifndef TD_TEST_LAYOUTS_H
#define TD_TEST_LAYOUTS_H

#include "textdiff/textdiff.h"

/* F(struct, field, offset) for each field, in order. */
#define TD_LAYOUT_SCHEDULE_CONFIG(F)             \
    F(td_schedule_config, struct_size, 0)        \
    F(td_schedule_config, kind, 4)               \
    F(td_schedule_config, eps, 8)                \
    F(td_schedule_config, power, 16)             \
    F(td_schedule_config, rate, 24)              \
    F(td_schedule_config, t_min, 32)             \
    F(td_schedule_config, bert_corruption, 40)   \
    F(td_schedule_config, reserved0, 44)

#define TD_LAYOUT_MODEL_CONFIG(F)                \
    F(td_model_config, struct_size, 0)           \
    F(td_model_config, vocab_size, 4)            \
    F(td_model_config, mask_id, 8)               \
    F(td_model_config, max_seq_len, 12)          \
    F(td_model_config, d_model, 16)              \
    F(td_model_config, n_layers, 20)             \
    F(td_model_config, n_heads, 24)              \
    F(td_model_config, d_ff, 28)                 \
    F(td_model_config, pos_encoding, 32)         \
    F(td_model_config, norm_placement, 36)       \
    F(td_model_config, tie_embeddings, 40)       \
    F(td_model_config, reserved0, 44)            \
    F(td_model_config, causal, 48)               \
    F(td_model_config, reserved1, 52)            \
    F(td_model_config, activation, 56)           \
    F(td_model_config, layer_norm_eps, 60)       \
    F(td_model_config, type_vocab_size, 64)      \
    F(td_model_config, pos_offset, 68)           \
    F(td_model_config, head_transform, 72)       \
    F(td_model_config, reserved2, 76)

#define TD_LAYOUT_TRAINER_CONFIG(F)              \
    F(td_trainer_config, struct_size, 0)         \
    F(td_trainer_config, batch_size, 4)          \
    F(td_trainer_config, seq_len, 8)             \
    F(td_trainer_config, n_threads, 12)          \
    F(td_trainer_config, seed, 16)               \
    F(td_trainer_config, lr, 24)                 \
    F(td_trainer_config, min_lr, 28)             \
    F(td_trainer_config, warmup_steps, 32)       \
    F(td_trainer_config, total_steps, 40)        \
    F(td_trainer_config, beta1, 48)              \
    F(td_trainer_config, beta2, 52)              \
    F(td_trainer_config, eps, 56)                \
    F(td_trainer_config, weight_decay, 60)       \
    F(td_trainer_config, clip_norm, 64)          \
    F(td_trainer_config, micro_batch, 68)

#define TD_LAYOUT_TRAIN_STATS(F)                 \
    F(td_train_stats, struct_size, 0)            \
    F(td_train_stats, reserved0, 4)              \
    F(td_train_stats, step, 8)                   \
    F(td_train_stats, loss, 16)                  \
    F(td_train_stats, grad_norm, 24)             \
    F(td_train_stats, lr, 32)                    \
    F(td_train_stats, n_masked, 40)

#define TD_LAYOUT_SAMPLER_CONFIG(F)              \
    F(td_sampler_config, struct_size, 0)         \
    F(td_sampler_config, strategy, 4)            \
    F(td_sampler_config, steps, 8)               \
    F(td_sampler_config, temperature, 12)        \
    F(td_sampler_config, top_k, 16)              \
    F(td_sampler_config, top_p, 20)              \
    F(td_sampler_config, seed, 24)               \
    F(td_sampler_config, block_len, 32)          \
    F(td_sampler_config, n_threads, 36)          \
    F(td_sampler_config, alg_temperature, 40)    \
    F(td_sampler_config, pad_id, 44)             \
    F(td_sampler_config, max_batch, 48)          \
    F(td_sampler_config, max_seq_len, 52)        \
    F(td_sampler_config, cache, 56)              \
    F(td_sampler_config, reserved0, 60)          \
    F(td_sampler_config, threshold, 64)          \
    F(td_sampler_config, factor, 68)             \
    F(td_sampler_config, remask, 72)             \
    F(td_sampler_config, eta, 76)                \
    F(td_sampler_config, remask_t_on, 80)        \
    F(td_sampler_config, remask_t_off, 84)       \
    F(td_sampler_config, remask_alpha_on, 88)    \
    F(td_sampler_config, guidance, 92)           \
    F(td_sampler_config, approx_cache, 96)       \
    F(td_sampler_config, eos_id, 100)

#define TD_LAYOUT_SAMPLE_STATS(F)                \
    F(td_sample_stats, struct_size, 0)           \
    F(td_sample_stats, reserved0, 4)             \
    F(td_sample_stats, model_calls, 8)           \
    F(td_sample_stats, steps, 16)                \
    F(td_sample_stats, cached_steps, 24)         \
    F(td_sample_stats, tokens_revealed, 32)      \
    F(td_sample_stats, tokens_generated, 40)     \
    F(td_sample_stats, tokens_remasked, 48)      \
    F(td_sample_stats, calls_per_token, 56)

#define TD_LAYOUT_EVAL_CONFIG(F)                 \
    F(td_eval_config, struct_size, 0)            \
    F(td_eval_config, seq_len, 4)                \
    F(td_eval_config, batch_size, 8)             \
    F(td_eval_config, n_threads, 12)             \
    F(td_eval_config, n_times, 16)               \
    F(td_eval_config, reserved0, 20)             \
    F(td_eval_config, seed, 24)                  \
    F(td_eval_config, max_sequences, 32)         \
    F(td_eval_config, bytes_per_token, 40)

#define TD_LAYOUT_EVAL_RESULT(F)                 \
    F(td_eval_result, struct_size, 0)            \
    F(td_eval_result, reserved0, 4)              \
    F(td_eval_result, nelbo_nats, 8)             \
    F(td_eval_result, nelbo_bits, 16)            \
    F(td_eval_result, bits_per_byte, 24)         \
    F(td_eval_result, perplexity_bound, 32)      \
    F(td_eval_result, std_error_nats, 40)        \
    F(td_eval_result, n_sequences, 48)           \
    F(td_eval_result, n_tokens, 56)

#define TD_LAYOUT_TEXT_STATS(F)                  \
    F(td_text_stats, struct_size, 0)             \
    F(td_text_stats, reserved0, 4)               \
    F(td_text_stats, n_bytes, 8)                 \
    F(td_text_stats, n_words, 16)                \
    F(td_text_stats, distinct_1, 24)             \
    F(td_text_stats, distinct_2, 32)             \
    F(td_text_stats, distinct_3, 40)             \
    F(td_text_stats, repetition, 48)             \
    F(td_text_stats, word_entropy_bits, 56)      \
    F(td_text_stats, known_words, 64)

#define TD_LAYOUT_RUNTIME_INFO(F)                \
    F(td_runtime_info, struct_size, 0)           \
    F(td_runtime_info, cpu_features, 4)          \
    F(td_runtime_info, blas_name, 8)             \
    F(td_runtime_info, blas_version, 24)         \
    F(td_runtime_info, blas_core, 152)           \
    F(td_runtime_info, blas_threads, 184)        \
    F(td_runtime_info, blas_threading, 188)      \
    F(td_runtime_info, lib_threading, 192)       \
    F(td_runtime_info, blas_slow_kernel, 224)    \
    F(td_runtime_info, reserved0, 228)           \
    F(td_runtime_info, blas_advice, 232)

#define TD_LAYOUT_LATENT_CONFIG(F)               \
    F(td_latent_config, struct_size, 0)          \
    F(td_latent_config, seq_len, 4)              \
    F(td_latent_config, n_latents, 8)            \
    F(td_latent_config, d_latent, 12)            \
    F(td_latent_config, n_heads, 16)             \
    F(td_latent_config, n_enc_layers, 20)        \
    F(td_latent_config, n_dec_layers, 24)        \
    F(td_latent_config, d_ff, 28)                \
    F(td_latent_config, n_den_layers, 32)        \
    F(td_latent_config, schedule, 36)            \
    F(td_latent_config, prediction, 40)          \
    F(td_latent_config, self_cond, 44)           \
    F(td_latent_config, tan_d, 48)

#define TD_LAYOUT_LATENT_TRAIN_CONFIG(F)         \
    F(td_latent_train_config, struct_size, 0)    \
    F(td_latent_train_config, batch_size, 4)     \
    F(td_latent_train_config, n_threads, 8)      \
    F(td_latent_train_config, stage, 12)         \
    F(td_latent_train_config, seed, 16)          \
    F(td_latent_train_config, lr, 24)            \
    F(td_latent_train_config, min_lr, 28)        \
    F(td_latent_train_config, warmup_steps, 32)  \
    F(td_latent_train_config, total_steps, 40)   \
    F(td_latent_train_config, beta1, 48)         \
    F(td_latent_train_config, beta2, 52)         \
    F(td_latent_train_config, eps, 56)           \
    F(td_latent_train_config, weight_decay, 60)  \
    F(td_latent_train_config, clip_norm, 64)     \
    F(td_latent_train_config, mse_weight, 68)    \
    F(td_latent_train_config, mask_prob, 72)     \
    F(td_latent_train_config, noise_std, 76)     \
    F(td_latent_train_config, latent_dropout, 80) \
    F(td_latent_train_config, reserved1, 84)

#define TD_LAYOUT_LATENT_TRAIN_STATS(F)          \
    F(td_latent_train_stats, struct_size, 0)     \
    F(td_latent_train_stats, reserved0, 4)       \
    F(td_latent_train_stats, step, 8)            \
    F(td_latent_train_stats, loss, 16)           \
    F(td_latent_train_stats, ce, 24)             \
    F(td_latent_train_stats, mse, 32)            \
    F(td_latent_train_stats, accuracy, 40)       \
    F(td_latent_train_stats, grad_norm, 48)      \
    F(td_latent_train_stats, lr, 56)

#define TD_LAYOUT_LATENT_SAMPLE_CONFIG(F)        \
    F(td_latent_sample_config, struct_size, 0)   \
    F(td_latent_sample_config, sampler, 4)       \
    F(td_latent_sample_config, steps, 8)         \
    F(td_latent_sample_config, n_threads, 12)    \
    F(td_latent_sample_config, seed, 16)         \
    F(td_latent_sample_config, noise_scale, 24)  \
    F(td_latent_sample_config, reserved0, 28)

#define TD_LAYOUT_ALLOCATOR(F)                   \
    F(td_allocator, malloc_fn, 0)                \
    F(td_allocator, realloc_fn, sizeof(void *))  \
    F(td_allocator, free_fn, 2 * sizeof(void *)) \
    F(td_allocator, user, 3 * sizeof(void *))

/* Every struct: S(struct, its field list). */
#define TD_LAYOUT_STRUCTS(S)                          \
    S(td_schedule_config, TD_LAYOUT_SCHEDULE_CONFIG)  \
    S(td_model_config, TD_LAYOUT_MODEL_CONFIG)        \
    S(td_trainer_config, TD_LAYOUT_TRAINER_CONFIG)    \
    S(td_train_stats, TD_LAYOUT_TRAIN_STATS)          \
    S(td_sampler_config, TD_LAYOUT_SAMPLER_CONFIG)    \
    S(td_sample_stats, TD_LAYOUT_SAMPLE_STATS)        \
    S(td_eval_config, TD_LAYOUT_EVAL_CONFIG)          \
    S(td_eval_result, TD_LAYOUT_EVAL_RESULT)          \
    S(td_text_stats, TD_LAYOUT_TEXT_STATS)            \
    S(td_runtime_info, TD_LAYOUT_RUNTIME_INFO)        \
    S(td_latent_config, TD_LAYOUT_LATENT_CONFIG)      \
    S(td_latent_train_config, TD_LAYOUT_LATENT_TRAIN_CONFIG) \
    S(td_latent_train_stats, TD_LAYOUT_LATENT_TRAIN_STATS) \
    S(td_latent_sample_config, TD_LAYOUT_LATENT_SAMPLE_CONFIG) \
    S(td_allocator, TD_LAYOUT_ALLOCATOR)

#endif

/*
 * model_f64.h: the network of lib/model/model_impl.h and the CPU backend
 * of lib/backend/cpu_impl.h compiled with REAL double, for the
 * finite-difference checks (unit_model_grad, unit_loss_model).  cpu_ops is
 * the backend table for double; net_init takes it.
 */
#ifndef MODEL_F64_H
#define MODEL_F64_H

#define REAL double
#include "backend/backend.h"

struct backend_f64 {
	const char *name;
	void *(*ctx_new)(void);
	void (*ctx_free)(void *ctx);
	BACKEND_OPS(double)
};
#define BACKEND backend_f64
#include "backend/cpu_impl.h"
#include "model/model_impl.h"

#endif

/* What the network binding (l_net.c) shares with the asynchronous step (l_async.c): the userdata
 * check and the training-step options, so both read the same fields the same way. */
#ifndef LU_L_NET_H
#define LU_L_NET_H

#include <lua.h>

#include "nn/unet.h"

#define LU_NET_MT "lunet.Net" /* a full userdata holding one lu_unet * */

/* The network at index i, or a Lua error (also when freed). */
lu_unet *lu_lua_check_net(lua_State *L, int i);
/* Reads a train-step options table (lr, momentum, weight_decay, grad_clip, ds_weights, loss fields). */
void lu_lua_train_opts(lua_State *L, int t, lu_train_opts *o);

#endif

/* Unit test of the model table (src/model/ek_models.def): what its capability
 * flags claim agrees with what the models are built from. */
#include "check.h"
#include "ek_backend.h"
#include "ek_model.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

int main(void)
{
    size_t n = 0;
    for (size_t i = 0; ek_models[i] != NULL; i++, n++) {
        const struct ek_model *m = ek_models[i];
        CHECK(ek_model_find(m->name) == m); /* and so names are unique */
        CHECK(m->summary != NULL && m->summary[0] != '\0');
        CHECK(m->default_max_conns > 0);
        /* One client at a time, or many: never both, never neither. */
        CHECK(ek_model_has(m, EK_CAP_ONE_AT_A_TIME) !=
              ek_model_has(m, EK_CAP_CONCURRENT));
        if (ek_model_has(m, EK_CAP_ONE_AT_A_TIME))
            CHECK_INT(m->default_max_conns, ==, 1);
        /* A readiness backend means the event loop, and its fd limit is
         * the FD_LIMIT flag. */
        if (m->backend != NULL) {
            CHECK(ek_model_has(m, EK_CAP_EVENT_LOOP));
            CHECK(ek_model_has(m, EK_CAP_FD_LIMIT) ==
                  (m->backend->fd_limit < INT_MAX));
            CHECK_STR(m->backend->name, m->name);
        }
        if (ek_model_unavailable(m) == NULL)
            CHECK(m->run != NULL);
        printf("%-10s caps %#04x, max-conns %llu, %s\n", m->name, m->caps,
               (unsigned long long)m->default_max_conns,
               ek_model_unavailable(m) ? "unavailable" : "available");
    }
    CHECK_INT(n, >=, 3);
    CHECK(ek_model_find("auto") == NULL);
    CHECK(ek_model_find("") == NULL);
    const struct ek_model *best = ek_model_auto();
    CHECK(ek_model_unavailable(best) == NULL);
    CHECK(ek_model_has(best, EK_CAP_EVENT_LOOP));
    printf("model table: %zu models, auto is %s\n", n, best->name);
    return 0;
}

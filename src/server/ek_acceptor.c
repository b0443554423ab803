#include "ek_acceptor.h"
#include "ek_util.h"

bool ek_acceptor_paused(struct ek_acceptor *acc)
{
    if (acc->resume_ms != 0 && ek_now_ms() >= acc->resume_ms)
        acc->resume_ms = 0;
    return acc->resume_ms != 0;
}

void ek_acceptor_resume(struct ek_acceptor *acc)
{
    acc->resume_ms = 0;
}

int ek_acceptor_timeout(const struct ek_acceptor *acc)
{
    return acc->resume_ms != 0 ? ek_timeout_until(acc->resume_ms) : -1;
}

import time, pytest
from tests.integration import trainer_helpers as h
from gpdl_backend.mop.job import fit_multiple_model

def test_smoke(dsn, shared_tmp):
    t=time.time()
    h.prepare_data(dsn, shared_tmp)
    print("data", time.time()-t)
    ids = h.arch_table(dsn)
    print(ids, time.time()-t)
    h.mst_table(dsn, "smoke_mst", [(ids["good"], h.COMPILE, h.FIT), (ids["good"], h.COMPILE_SLOW, h.FIT), (ids["big"], h.COMPILE, h.FIT)])
    h.drop_output(dsn, "smoke_out")
    t=time.time()
    job = fit_multiple_model(dsn, h.TRAIN, "smoke_out", "smoke_mst", 3, validation_table=h.VALIDATION, metrics_compute_frequency=1)
    print("fit", time.time()-t)
    print(job.status())
    for k,v in h.info(dsn, "smoke_out").items(): print(v)
    print(h.summary(dsn, "smoke_out"))
    print(h.fetch(dsn, "select * from smoke_out_progress order by finished_at"))

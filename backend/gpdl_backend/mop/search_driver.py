"""The driver of an AutoML search: MOP units, each configuration on its own clock.

It shares the fit driver's sessions, unit and evaluation statements, retries and
stop requests (``mop.driver``); what differs is the loop. A
:class:`~gpdl_backend.mop.hopper.HopperScheduler` hands out units with no
iteration barrier. When a configuration has visited every segment its weights
are folded into ``<out>`` and, when due, it is evaluated on the segments (the
evaluation queues behind each segment's unit in flight); at the end of its
budget the oracle hears its loss and may promote it, pause it or start new
configurations, which the sampler draws. Every decision is written in the same
transaction as what it was decided from, so a resumed search continues from
the tables.
"""

from __future__ import annotations

import json
import math
import queue
import time
from collections.abc import Callable
from typing import Any

import psycopg2
from psycopg2 import sql

from gpdl_backend.automl.oracles import (
    NewConfig,
    Oracle,
    Promote,
    make_oracle,
    oracle_from_state,
)
from gpdl_backend.automl.space import Sampler
from gpdl_backend.errors import FatalError, UnitFailedError
from gpdl_backend.mop import tables
from gpdl_backend.mop.driver import (
    MAX_UNIT_ATTEMPTS,
    Config,
    Driver,
    Evaluation,
    Event,
    JobPlan,
    append_metrics,
    combine,
    elapsed_seconds,
)
from gpdl_backend.mop.hopper import HopperScheduler
from gpdl_backend.mop.job import ModelRow, config_problem, insert_config
from gpdl_backend.mop.scheduler import Unit
from gpdl_backend.mop.search_plan import SearchPlan, Track
from gpdl_backend.mop.steering import extend_problem

__all__ = ["SearchDriver", "oracle_of"]

CLONE_OF = "clone_of"
"""The ``params`` key of a clone (``mop.steering``): the configuration it was cloned from."""
EXTRA_ACTIVE = 1
"""Configurations kept trainable beyond one per segment, so a segment rarely waits
while a configuration is being evaluated."""


def oracle_of(search: SearchPlan) -> Oracle:
    """The search's oracle, fresh or as its last committed state left it."""
    if search.oracle_state is None:
        return make_oracle(search.params)
    return oracle_from_state(search.oracle_state)


class SearchDriver(Driver):
    """Runs a search (``JobPlan.search``) to its end, a stop request, or a fatal error."""

    def __init__(self, plan: JobPlan, listener: Callable[[Event], None] | None = None) -> None:
        super().__init__(plan, listener)
        search: SearchPlan = plan.search
        self.search = search
        self.oracle = oracle_of(search)
        # Hyperband samples at random, as MADlib's does.
        self.sampler = Sampler(search.space, search.params.algorithm or "rand", search.seed)
        self.trial_of: dict[int, int] = {}  # mst_key -> the sampler's trial number
        self.tracks = {t.mst_key: t for t in search.tracks}
        self.hand = {t.mst_key for t in search.tracks if t.hand_made}  # see mop.steering
        for track in search.tracks:  # what the sampler learnt before a resume
            if CLONE_OF in track.params:
                continue  # a person's configuration, not the sampler's
            if _reported(track):
                self.sampler.add_history(track.params, _loss_or_failed(track.loss))
            else:  # its first rung ends in this run: tell it then
                self.trial_of[track.mst_key] = self.sampler.add_history(track.params, None)
        self.evaluations: dict[int, dict[str, Any]] = {}
        self.archs: dict[int, str] = {}
        self.next_key = max(self.tracks, default=0) + 1
        self.folds = 0

    # --- the loop ------------------------------------------------------------
    def _scheduler(self) -> HopperScheduler:
        hopper = HopperScheduler([s.index for s in self.plan.segments], self.plan.seed)
        for track in self.search.tracks:
            if track.mst_key in self.plan.stopped or track.status == tables.PAUSED:
                continue  # ended, or waiting at its rung for the oracle
            hopper.add(track.mst_key, track.budget, track.iterations_done,
                       [u.segment for u in self.plan.completed if u.config == track.mst_key])
        return hopper

    def _main_loop(self, hopper: HopperScheduler) -> str:
        for config in hopper.configs:  # died between a configuration's last unit and its end
            if hopper.awaits_evaluation(config):
                self._iteration_done(hopper, config)
        in_flight: set[Unit] = set()
        last_poll = 0.0
        while True:
            if time.monotonic() - last_poll > 1.0:
                last_poll = time.monotonic()
                if self._poll_search_stops(hopper, in_flight):
                    return tables.STOPPED
            self._fill(hopper)
            for unit in hopper.assign_all_idle():
                in_flight.add(unit)
                self.inbox[unit.segment].put(("train", unit))
            if not in_flight and not self.evaluations and hopper.idle:
                if self.oracle.done:
                    break
                if hopper.active_count == 0:
                    raise FatalError("the search stalled: nothing to train and the oracle "
                                     "is not done")
            try:
                payload, result = self.results.get(timeout=0.5)
            except queue.Empty:
                continue
            if isinstance(payload, Unit):
                in_flight.discard(payload)
                self._unit_result(hopper, payload, result)
            else:
                self._evaluation_result(hopper, payload, result)
        self._on_control("finish the search", self._finish)
        self.listener(Event("finished", self.units_done, self.units_done, 0))
        return tables.FINISHED

    def _units_total(self, hopper: HopperScheduler) -> int:
        return self.units_done + hopper.units_left()

    def _unit_result(self, hopper: HopperScheduler, unit: Unit,
                     error: BaseException | None) -> None:
        if error is not None:
            self._handle_failure(hopper, unit, error)
            return
        iteration_done = hopper.complete(unit)
        self.visits.setdefault(unit.config, []).append(unit.segment)
        self.units_done += 1
        self.listener(Event("unit", self.units_done, self._units_total(hopper),
                            unit.iteration, f"mst {unit.config} on segment {unit.segment}"))
        if iteration_done:
            self._iteration_done(hopper, unit.config)

    # --- a configuration's iteration ---------------------------------------------
    def _iteration_done(self, hopper: HopperScheduler, mst: int) -> None:
        """Fold the configuration's weights; evaluate it when due, else go on."""
        iteration = hopper.iteration_of(mst)
        count = iteration + 1
        self._on_control(f"fold mst {mst}", lambda: self._fold(mst, iteration))
        every = self.search.every
        if count == hopper.budget_of(mst) or (every and count % every == 0):
            targets = ["train"] + (["validation"] if self.plan.validation is not None else [])
            self.evaluations[mst] = {"left": len(self.plan.segments) * len(targets),
                                     "parts": {}, "attempts": {}}
            for segment in self.plan.segments:
                for target in targets:
                    self.inbox[segment.index].put(("evaluate", (mst, segment.index, target)))
        else:
            self._end_iteration_of(hopper, mst, None)

    def _fold(self, mst: int, iteration: int) -> None:
        out = self.plan.output
        with self.control.connection().cursor() as cur:
            cur.execute(out.fold_config_sql(), dict(
                mst=mst, iteration=iteration, last_hop=len(self.plan.segments) - 1))

    def _evaluation_result(self, hopper: HopperScheduler, task: tuple,
                           result: Any) -> None:
        mst, segment, target = task
        pending = self.evaluations.get(mst)
        if pending is None:  # its configuration was stopped meanwhile
            return
        if isinstance(result, BaseException):
            attempts = pending["attempts"][task] = pending["attempts"].get(task, 0) + 1
            if isinstance(result, UnitFailedError) and result.retryable and \
                    attempts < MAX_UNIT_ATTEMPTS:
                self.inbox[segment].put(("evaluate", task))
                return
            raise result
        pending["parts"].setdefault(target, []).append(result)
        pending["left"] -= 1
        if pending["left"] == 0:
            del self.evaluations[mst]
            values = {name: combine(parts) for name, parts in pending["parts"].items()}
            self._end_iteration_of(hopper, mst, values)

    def _end_iteration_of(self, hopper: HopperScheduler, mst: int,
                          values: dict[str, Evaluation] | None) -> None:
        """Record the iteration (and its evaluation); at the budget, ask the oracle."""
        count = hopper.iteration_of(mst) + 1
        at_budget = count >= hopper.budget_of(mst)
        loss = None
        if values is not None:
            ranked = values.get("validation", values["train"])
            loss = _finite(ranked.loss)
        if at_budget and mst not in self.hand:
            self.oracle.report(mst, count, math.nan if loss is None else loss)
            self._tell(mst, loss)
        hopper.end_iteration(mst)  # before the commit: the statuses it writes see the end
        self.visits.pop(mst, None)
        self._on_control(f"record mst {mst} iteration {count}",
                         lambda: self._commit_config(mst, count, values, hopper))
        self.listener(Event("iteration", self.units_done, 0, count,
                            f"mst {mst}: iteration {count} of {hopper.budget_of(mst)}"))

    def _commit_config(self, mst: int, count: int, values: dict[str, Evaluation] | None,
                       hopper: HopperScheduler) -> None:
        out = self.plan.output
        with self.control.connection().cursor() as cur:
            cur.execute("BEGIN")
            cur.execute(sql.SQL("SELECT iterations_done FROM {} WHERE mst_key = %s").format(
                out.info.identifier), (mst,))
            if cur.fetchone()[0] >= count:  # an earlier attempt committed, its reply lost
                cur.execute("ROLLBACK")
                return
            if values is not None:
                append_metrics(cur, out, mst, values, elapsed_seconds(cur, out))
            cur.execute(sql.SQL(
                "UPDATE {} SET iterations_done = %s, metrics_iters = CASE WHEN %s THEN "
                "metrics_iters || %s ELSE metrics_iters END WHERE mst_key = %s").format(
                out.info.identifier), (count, values is not None, count, mst))
            self._write_decisions(cur, hopper)
            cur.execute("COMMIT")

    # --- the oracle's decisions ------------------------------------------------------
    def _fill(self, hopper: HopperScheduler) -> None:
        """Start or promote configurations while fewer train than the segments can take."""
        while hopper.active_count < len(self.plan.segments) + EXTRA_ACTIVE:
            job = self.oracle.next_job()
            if job is None:
                return
            if isinstance(job, NewConfig):
                self._start(hopper, job)
            else:
                self._promote(hopper, job)

    def _promote(self, hopper: HopperScheduler, job: Promote) -> None:
        stopped = job.key in self.plan.stopped
        if stopped:  # stopped by hand while it waited: the worst of its new rung
            self.oracle.report(job.key, job.budget, math.nan)
        elif job.key in hopper.configs:
            hopper.extend(job.key, job.budget)
        else:  # paused at its rung when the driver (re)started
            track = self.tracks[job.key]
            hopper.add(job.key, job.budget, track.iterations_done)
        self._on_control(f"promote mst {job.key}", lambda: self._write_promotion(job, hopper))

    def _write_promotion(self, job: Promote, hopper: HopperScheduler) -> None:
        with self.control.connection().cursor() as cur:
            cur.execute("BEGIN")
            cur.execute(sql.SQL("UPDATE {} SET budget = %s, i = %s WHERE mst_key = %s").format(
                self.plan.output.info.identifier), (job.budget, job.rung, job.key))
            self._write_decisions(cur, hopper)
            cur.execute("COMMIT")

    def _start(self, hopper: HopperScheduler, job: NewConfig) -> None:
        """Draw a configuration, write its rows and schedule it."""
        mst, trial = self.next_key, self.sampler.ask()
        self.next_key += 1
        self.oracle.started(mst, job)
        problem = None

        def write() -> None:
            nonlocal problem
            problem = self._write_config(mst, trial, job, hopper)

        self._on_control(f"start mst {mst}", write)
        self.plan.configs.append(Config(mst, trial.compile_params, trial.fit_params))
        if problem:  # a sampled value Keras refuses: this configuration fails alone
            self.plan.stopped.append(mst)
            self.listener(Event("retry", self.units_done, 0, 0,
                                f"mst {mst} ({trial.compile_params}; {trial.fit_params}) "
                                f"failed: {problem}"))
            return
        self.trial_of[mst] = trial.number
        hopper.add(mst, job.budget)

    def _write_config(self, mst: int, trial: Any, job: NewConfig,
                      hopper: HopperScheduler) -> str | None:
        """Check and write a new configuration (one transaction); what Keras refused, if any."""
        plan, out = self.plan, self.plan.output
        with self.control.connection().cursor() as cur:
            arch = self._arch(cur, trial.model_id)
            info, problem = config_problem(
                cur, arch, trial.compile_params, trial.fit_params, self._image_shape(cur),
                plan.num_classes, None, "initial weights")
            cur.execute("BEGIN")
            cur.execute(sql.SQL("SELECT count(*) FROM {} WHERE mst_key = %s").format(
                out.info.identifier), (mst,))
            if cur.fetchone()[0]:  # an earlier attempt committed, its reply lost
                cur.execute("ROLLBACK")
                return problem
            if problem and self.oracle.outcome(mst) == "training":  # once, even on a retry
                self.oracle.report(mst, job.budget, math.nan)
                self.sampler.tell(trial.number, math.inf)
            row = ModelRow(mst, trial.model_id, trial.compile_params, trial.fit_params, arch)
            # A failed one is marked stopped too, so that a resume leaves it alone.
            insert_config(cur, out, row, None, info, plan.seed,
                          status=tables.FAILED if problem else tables.TRAINING,
                          extra=dict(budget=job.budget, s=job.bracket, i=job.rung,
                                     params=_dumps(trial.params),
                                     stop_requested=bool(problem)))
            cur.execute(sql.SQL(
                "INSERT INTO {} (mst_key, model_id, compile_params, fit_params) "
                "VALUES (%s, %s, %s, %s)").format(self.search.selection_table.identifier),
                (mst, trial.model_id, trial.compile_params, trial.fit_params))
            self._write_decisions(cur, hopper)
            cur.execute("COMMIT")
        return problem

    def _tell(self, mst: int, loss: float | None) -> None:
        """The sampler learns a configuration's loss at its first rung (once)."""
        number = self.trial_of.pop(mst, None)
        if number is not None:
            self.sampler.tell(number, math.inf if loss is None else loss)

    def _write_decisions(self, cur: Any, hopper: HopperScheduler) -> None:
        """The oracle's state and every configuration's status, inside the caller's BEGIN."""
        out = self.plan.output
        statuses = {mst: self._status_of(mst, hopper) for mst in self._keys()}
        for mst, status in statuses.items():
            cur.execute(sql.SQL("UPDATE {} SET status = %s WHERE mst_key = %s AND status "
                                "NOT IN (%s, %s) AND status <> %s").format(
                out.info.identifier), (status, mst, tables.FAILED, tables.STOPPED, status))
        cur.execute(sql.SQL(
            "UPDATE {} SET automl_state = %s, units_planned = %s, end_training_time = now(), "
            "iterations_done = (SELECT coalesce(max(iterations_done), 0) FROM {})").format(
            out.summary.identifier, out.info.identifier),
            (_dumps(self.oracle.state()), self._units_total(hopper)))

    def _keys(self) -> list[int]:
        return [c.mst_key for c in self.plan.configs]

    def _status_of(self, mst: int, hopper: HopperScheduler) -> str:
        if mst in self.hand:
            trains = mst in hopper.configs and not hopper.is_stopped(mst) \
                and hopper.iteration_of(mst) < hopper.budget_of(mst)
            return tables.TRAINING if trains else tables.FINISHED
        outcome = self.oracle.outcome(mst)
        if outcome == "stopped":
            return tables.EARLY_STOPPED
        return {"paused": tables.PAUSED, "finished": tables.FINISHED}.get(
            outcome, tables.TRAINING)

    def _finish(self) -> None:
        out = self.plan.output
        conn = self.control.connection()
        with conn.cursor() as cur:
            cur.execute(out.clear_hops_sql())
            cur.execute(sql.SQL("VACUUM {}, {}").format(out.progress.identifier,
                                                         out.model.identifier))

    # --- stop requests -------------------------------------------------------------
    def _poll_search_stops(self, hopper: HopperScheduler, in_flight: set[Unit]) -> bool:
        """Stop configurations asked to, apply a person's requests; True when the search stops."""
        if self._poll_stops(_StopView(self, hopper), in_flight):
            return True
        try:
            with self.control.connection().cursor() as cur:
                cur.execute(sql.SQL("SELECT requests FROM {}").format(
                    self.plan.output.summary.identifier))
                requests = cur.fetchone()[0] or []
        except psycopg2.OperationalError:
            self.control.drop()
            return False
        for request in requests:
            self._apply_request(hopper, request)
        return False

    # --- a person's requests (mop.steering) --------------------------------------------
    def _apply_request(self, hopper: HopperScheduler, request: dict) -> None:
        answer: dict = {}
        self._on_control(f"{request['kind']} mst {request['mst_key']}",
                         lambda: answer.update(self._answer(hopper, request)))
        if "error" in answer:
            self.listener(Event("steered", self.units_done, 0, 0, answer["error"]))
            return
        mst = int(answer["value"]) if request["kind"] == "clone" else int(request["mst_key"])
        self.hand.add(mst)
        if mst in self.plan.stopped:
            self.plan.stopped.remove(mst)
        if request["kind"] == "clone":
            self.next_key = max(self.next_key, mst + 1)
            if mst not in hopper.configs:
                self.plan.configs.append(
                    Config(mst, request["compile_params"], request["fit_params"]))
                hopper.add(mst, int(request["iterations"]))
        elif mst in hopper.configs:
            hopper.extend(mst, int(answer["value"]))
        else:  # it ended before the driver (re)started
            hopper.add(mst, int(answer["value"]), int(answer["iterations_done"]))
        self.listener(Event("steered", self.units_done, 0, 0,
                            f"{request['kind']} mst {request['mst_key']}: {answer}"))

    def _answer(self, hopper: HopperScheduler, request: dict) -> dict:
        """Check and write one request and its answer (one transaction); the answer."""
        out = self.plan.output
        with self.control.connection().cursor() as cur:
            problem, clone = None, None
            if request["kind"] == "clone":
                clone = self._clone_source(cur, request)
                problem = clone["problem"]
            cur.execute("BEGIN")
            cur.execute(sql.SQL("SELECT request_results -> %s FROM {}").format(
                out.summary.identifier), (request["id"],))
            earlier = cur.fetchone()[0]
            if earlier is not None:  # an earlier attempt committed, its reply lost
                cur.execute("ROLLBACK")
                return earlier
            if problem:
                answer = {"error": problem}
            elif clone is not None:
                answer = self._write_clone(cur, request, clone)
            else:
                answer = self._write_extension(cur, request)
            cur.execute(sql.SQL(
                "UPDATE {} SET request_results = request_results || jsonb_build_object("
                "%s, %s::jsonb), requests = (SELECT coalesce(jsonb_agg(r), '[]') FROM "
                "jsonb_array_elements(requests) r WHERE r ->> 'id' <> %s)").format(
                out.summary.identifier),
                (request["id"], _dumps(answer), request["id"]))
            cur.execute("COMMIT")
        return answer

    def _write_extension(self, cur: Any, request: dict) -> dict:
        info = self.plan.output.info.identifier
        mst = int(request["mst_key"])
        cur.execute(sql.SQL("SELECT status, iterations_done, budget, hand_made FROM {} "
                            "WHERE mst_key = %s").format(info), (mst,))
        row = cur.fetchone()
        if row is None:
            return {"error": f"no mst_key {mst}"}
        status, done, budget, hand_made = row
        problem = extend_problem(mst, status, hand_made)
        if problem:
            return {"error": problem}
        base = budget if hand_made and status == tables.TRAINING else done
        new_budget = base + int(request["iterations"])
        cur.execute(sql.SQL("UPDATE {} SET budget = %s, hand_made = true, status = %s "
                            "WHERE mst_key = %s").format(info), (new_budget, tables.TRAINING, mst))
        return {"value": new_budget, "iterations_done": done}

    def _clone_source(self, cur: Any, request: dict) -> dict:
        """The clone's model and weights, and what Keras refuses about it (checked before)."""
        out, mst = self.plan.output, int(request["mst_key"])
        cur.execute(sql.SQL("SELECT o.model_weights, i.model_id FROM {} o JOIN {} i "
                            "USING (mst_key) WHERE mst_key = %s").format(
            out.model.identifier, out.info.identifier), (mst,))
        row = cur.fetchone()
        if row is None:
            return {"problem": f"no mst_key {mst}"}
        weights, model_id = bytes(row[0]), row[1]
        arch = self._arch(cur, model_id)
        info, problem = config_problem(
            cur, arch, request["compile_params"], request["fit_params"], self._image_shape(cur),
            self.plan.num_classes, weights, "cloned weights")
        return dict(weights=weights, model_id=model_id, arch=arch, info=info, problem=problem)

    def _write_clone(self, cur: Any, request: dict, clone: dict) -> dict:
        mst = self.next_key
        row = ModelRow(mst, clone["model_id"], request["compile_params"],
                       request["fit_params"], clone["arch"])
        insert_config(cur, self.plan.output, row, clone["weights"], clone["info"],
                      self.plan.seed, extra=dict(
                          budget=int(request["iterations"]), s=None, i=0, hand_made=True,
                          params=_dumps({CLONE_OF: int(request["mst_key"])})))
        cur.execute(sql.SQL(
            "INSERT INTO {} (mst_key, model_id, compile_params, fit_params) "
            "VALUES (%s, %s, %s, %s)").format(self.search.selection_table.identifier),
            (mst, clone["model_id"], request["compile_params"], request["fit_params"]))
        return {"value": mst}

    # --- reading ---------------------------------------------------------------------
    def _arch(self, cur: Any, model_id: int) -> str:
        if model_id not in self.archs:
            cur.execute(sql.SQL("SELECT model_arch::text FROM {} WHERE model_id = %s").format(
                self.search.arch_table.identifier), (model_id,))
            self.archs[model_id] = cur.fetchone()[0]
        return self.archs[model_id]

    def _image_shape(self, cur: Any) -> list[int]:
        cur.execute(sql.SQL("SELECT image_shape FROM {}").format(
            self.plan.output.summary.identifier))
        return list(cur.fetchone()[0])


class _StopView:
    """What ``Driver._poll_stops`` asks of a scheduler, over the hopper and the oracle.

    A configuration stopped by hand ends: if the oracle waits for its loss it
    hears the worst one, so the search goes on without it.
    """

    def __init__(self, driver: SearchDriver, hopper: HopperScheduler) -> None:
        self.driver, self.hopper = driver, hopper

    @property
    def active_configs(self) -> list[int]:
        return [c for c in self.driver._keys() if c not in self.driver.plan.stopped]

    def stop(self, mst: int) -> None:
        driver, hopper = self.driver, self.hopper
        driver.plan.stopped.append(mst)
        driver.evaluations.pop(mst, None)
        if mst in hopper.configs:
            if not hopper.at_budget(mst) and mst not in driver.hand:
                driver.oracle.report(mst, hopper.budget_of(mst), math.nan)
                driver._tell(mst, None)
            hopper.stop(mst)


def _reported(track: Track) -> bool:
    """Whether the oracle (and so the sampler) heard this configuration's loss before."""
    return (track.status != tables.TRAINING or track.rung > 0
            or track.iterations_done >= track.budget)


def _loss_or_failed(loss: float | None) -> float:
    return math.inf if loss is None or not math.isfinite(loss) else loss


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _dumps(value: Any) -> str:
    return json.dumps(value)

"""Virtual patients: the UVA/Padova 2008 type 1 diabetes model, vectorised over patients.

- ``patients``: the 30 published virtual patients (parameters, carb ratio, correction factor).
- ``model``: the 13-state model (+3 exercise states), one RK4 step per minute for ``n`` patients.
- ``exercise``: the heart-rate exercise model (Breton 2008; Dalla Man, Breton & Cobelli 2009).
- ``therapy``: meals, basal-bolus therapy with its mistakes, exercise bouts, drawn by seed.
- ``source``: a patient as reference glucose (``patient:adult#001``) for the sensor chain.
"""

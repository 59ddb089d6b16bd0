"""hlr: lookups, their numbers, paid-call intents, results, risky operators (seeded), outcome rules

Revision ID: 0006_hlr
Revises: 0003_numbers
Create Date: 2026-11-23 06:22:44.694229
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import phoneops.core.db

revision = '0006_hlr'
down_revision = '0003_numbers'
branch_labels = None
depends_on = None

# The original's 269 risky operator names as this migration seeded them (frozen: phoneops.hlr.risky.SEED_NAMES
# may change later; this list never does). Each is already its own matching key (lower case, no spaces).
SEED_NAMES = (
    '1globaloperationsb.v.', '24sevencommunicationsltd', '3ss.a.', '888b.v.', 'a1slovenija,d.d.', 'acecallltd',
    'adista', 'aero2sp.zo.o.', 'aero2', 'afoneparticipations', 'ahmessp.zo.o.', 'airenetworksdelmediterraneo,s.l.u.',
    'airenetworksdelmediterraneo', 'airwavesolutionsltd', 'alaioperadordetelecomunicaciones',
    'alaioperadordetelecomunicaciones,s.l.u.', 'alandstelekommunikationab', 'alphalink',
    'altatechnologiaencomunicacions', 'andrews&arnoldltd', 'anywheresimlimited', 'apifons.a.',
    'aspidersolutionsnederlandbv', 'atlasinvesto†', 'avatelmovils.l.unipersonal', 'bazile',
    'bbphonelevantes.l.unipersonal', 'bebbicellag(nowrelarioag)', 'beeonecommunicationssa',
    'bodytracenetherlandsb.v.', 'bsgestoniaou', 'btmobile', 'btmobile-mvno', 'call.comtelecomlimited', 'cat',
    'cellmobilea.e.-greece', 'citrustelecommunicationsltd', 'claudeictpolandsp.zo.o.', 'cleverenableb.v.',
    'cloud9mobilecommunicationsltd', 'cludospzo.o.', 'comfoneag', 'communications-electronicssecuritygroup(cesg)',
    'companymobile', 'compatelltd', 'completel', 'completelsas', 'coopvoce', 'corecommunicationservicesltd',
    'coretelecomlimited', 'coriolistelecomsas', 'cosmotemobiletelecommunicationss.a.', 'cpronetworks',
    'crossmobilesp.zo.o.', 'cuumacommunicationsoy', 'cyfrowypolsats.a.', 'cytahellassa', 'digicommunicationsbelgium',
    'digicommunicationsbelgiumnv', 'digicommunicationsn.v.', 'digiportugalsociedadeunipessoal',
    'digiportugal,sociedadeunipessoallda', 'digispaintelecom', 'digispaintelecom,s.l.u.',
    'dragonetcomunicacioness.l.', 'e-messagewirelessinfoservices', 'elephanttalkcommunicationscorp.', 'enelspa',
    'euro-informationtelecom', 'euskaltel,s.a.', 'ezphonemobilesp.zo.o.', 'fastweb-fullmvnotim', 'febotelecomltd',
    'flextellimited', 'foniatelecomsp.zo.o.', 'freemobiles.a.s.', 'fundacjanaszawizja', 'galenasp.zo.o.',
    'gammatelecomholdingsltd', 'giancom', 'globalcarriertelecoms.l.', 'groupebfrbusiness', 'guernseyairtellimited',
    'hanhaalimited', 'hotmobild.o.o.', 'hotmobil,telekomunikacijeinstoritved.o.o.', 'hutchisondreiaustriagmbh',
    'i.m.consultingizabelamilosz', 'icronnetworklimited', 'iliaditalias.p.a.', 'ineas.a.', 'ipnordic',
    'itelsolutionssp.zo.o.', 'itineovisions.a.', 'itineovisions.a.(operatingascanal+polskas.a.)',
    'jerseyairtellimited', 'jmdijacekmaleszko', 'jt(guernsey)limited', 'jt(jersey)limited',
    'klucztelekomunikacjasp.zo.o.', 'koninklijkekpnn.v.', 'l-mobimobilebv', 'lapostemobile', 'lapostetelecom',
    'legos', 'linkmobilityuklimited', 'linkmobilityukltd(hsl)', 'linkt', 'manxtelecomlimited', 'manxtelecomltd.',
    'marathontelecom(uk)ltd', 'massresponsegmbh', 'massresponseservicegmbh',
    'meo-servicosdecomunicaťesemultimždia,s.a.ž', 'meoservicoscommsemultimedia', 'metroportsp.zo.o.', 'mint',
    'mobiledatasp.zo.o.', 'mobilevalue', 'mtelaustriagmbh', 'mtelschweizgmbh', 'multimediapolskas.a.',
    'mvne.plsp.zo.o.', 'nauprofitsp.zo.o.', 'navercas.r.l.', 'netcomgroupsas', 'netcomgroup', 'netcomgroup_f',
    'netcomgroup_o', 'nethyssa', 'netias.a.', 'networthtelecom', 'nexphoneag', 'nextmobilep.s.a.',
    'nextustelecoms.r.l.', 'nodemaxlimited', 'nordnet', 'noscomunicacoess.a.', 'noscomunicacoes,s.a.',
    'nowatelefoniasp.zo.o.', 'nowocommunicationss.a.', 'nowocommunications,s.a.', 'odidonetherlandsb.v.',
    'onitelecominfocomunicacoess.a.', 'onmovildivisiontelefoniamoviltysoncarrascoinversiones,s.l.', 'onofftelecom',
    'onofftelecomsas', 'opencabletelecomunicaciones,s.l.', 'orangebelgium', 'orangebelgiums.a.',
    'orangeespagne,s.a.u.', 'orangeespanavirtual', 'orangeespanavirtual,s.l.u.', 'oranges.a.', 'oteglobesa',
    'otvartasp.zo.o.', 'p4sp.zo.o.', 'p4sp.zo.o.(play)', 'pareteumeuropeb.v.', 'pepemobiles.l.',
    'plintronitalys.r.l.', 'plintronspa', 'polkomtelsp.zo.o.', 'polkomtelsp.zo.o.(plus)',
    'polskiesiecicyfrowesp.zo.o.', 'postemobiles.p.a.', 'premiummobilesp.zo.o.', 'prixtel', 'prixtel_o', 'procono',
    'proconos.a.', 'proximusnvvanpubliekrecht', 'quattre', 'quattreinternets.l.',
    'rcableytelecabletelecomunicaciones,s.a.u.', 'rcableytelecomunicacionesgalicia', 'reteferroviariaitalianas.p.a.',
    'rfi-reteferroviariaitaliana', 'saltmobilesa', 'satfilmsp.zo.o.iwspolnicysp.k.', 'seteracommunicationsoy',
    'sewancommunications', 'sewanespanacomunicaciones,s.l.u.', 'sewansas', 'sgts.a.', 'sianetbalt',
    'sierrawirelessfrancesas', 'silbo-telecomunicaciones,s.l.', 'silbotelecomunicaciones', 'simservice',
    'simwoodesmslimited', 'sipgatewirelessgmbh', 'sisnetnuevastecnologiass.l.unipersonal', 'skyuklimited',
    'societefrancaiseduradiotelephone-sfr', 'spaceteluklimited', 'stourmarinelimited', 'sudtelecom',
    'sumaoperadordetelecomunicaciones', 'sumaoperadordetelecomunicaciones,s.l.u.', 'sumamovilportugal,s.a.',
    'sunrisecommunicationsag', 'sunrisegmbh', 'suopmobiles.l.', 'sure(guernsey)limited', 'sure(jersey)limited',
    'swisscom(schweiz)ag', 'swisscomschweizag', 'syma', 'symamobile', 'synectivlimited', 't-2d.o.o.mobile',
    't-2d.o.o.', 't-mobileaustriagmbh', 't-mobilepolskas.a.', 'tangonetworksukltd.', 'tatacommunications(uk)limited',
    'tatacommunications(uk)ltd', 'tatacommunicationsmovebv', 'tatacommunicationsmovenederlandb.v.', 'telavox',
    'telcoleadersltd', 'telcovillagegmbh', 'telefonicamoviles(movistar)', 'telefonicauk(virginmediao2)',
    'telegosp.zo.o.', 'telekomslovenije,d.d.', 'telemach', 'telemachd.o.o.mobile', 'telenableraps', 'telenetbvba',
    'telenetgroupbvba', 'telenetgroupholdingnv', 'telenetgroupn.v.', 'telesignmobilelimited', 'telestradas.a.',
    'telewaregroupplc', 'tglservices(uk)ltd', 'timtelecomitaliaspa', 'tismib.v.', 'tismibv', 'toyasp.zo.o.',
    'transatel', 'truphonegmbh', 'truphonelimited', 'truphoneltd', 'truphonepolandsp.zo.o.', 'ukbroadbandlimited',
    'uni-tel(tdc)', 'universityofstrathclyde', 'upcpolskasp.zo.o.', 'upcschweizgmbh(sunrise)', 'vcompolskasp.zo.o.',
    'vectone/mundio-fullmvno', 'vectras.a.', 'ventocomgmbh', 'vikingcopolandsp.zo.o.', 'vmedo2uklimited',
    'vodafone-panafonhellenictelecommunicationscompanys.a.', 'voicetecsystemsltd', 'voiceworksb.v.', 'voiceworksbv',
    'voiptelecom', 'welcomes.p.a.', 'wirelesslogiclimited', 'xferamoviles', 'ziggobv', 'zinniatelecomunicaciones',
    'zironlimited',
)


def upgrade() -> None:
    # ### commands auto generated by Alembic - please adjust! ###
    op.create_table('hlr_outcome_rules',
    sa.Column('live_status', sa.String(length=40), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=64), nullable=True),
    sa.Column('updated_by', sa.String(length=64), nullable=False),
    sa.Column('updated_at', phoneops.core.db.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('live_status', name=op.f('pk_hlr_outcome_rules'))
    )
    op.create_table('hlr_risky_operators',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('normalized', sa.String(length=200), nullable=False),
    sa.Column('mccmnc', sa.String(length=8), nullable=False),
    sa.Column('note', sa.String(length=200), nullable=True),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('created_at', phoneops.core.db.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_hlr_risky_operators')),
    sa.UniqueConstraint('normalized', 'mccmnc', name=op.f('uq_hlr_risky_operators_normalized_mccmnc'))
    )
    with op.batch_alter_table('hlr_risky_operators', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_hlr_risky_operators_mccmnc'), ['mccmnc'], unique=False)
        batch_op.create_index(batch_op.f('ix_hlr_risky_operators_normalized'), ['normalized'], unique=False)

    op.create_table('hlr_lookups',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('mode', sa.String(length=16), nullable=False),
    sa.Column('batch_size', sa.Integer(), nullable=False),
    sa.Column('source_kind', sa.String(length=8), nullable=False),
    sa.Column('source', sa.JSON(), nullable=False),
    sa.Column('job_id', sa.String(length=36), nullable=True),
    sa.Column('rows', sa.Integer(), nullable=False),
    sa.Column('invalid', sa.Integer(), nullable=False),
    sa.Column('duplicates', sa.Integer(), nullable=False),
    sa.Column('numbers', sa.Integer(), nullable=False),
    sa.Column('fresh', sa.Integer(), nullable=False),
    sa.Column('to_lookup', sa.Integer(), nullable=False),
    sa.Column('credits_estimate', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('budget', sa.Integer(), nullable=False),
    sa.Column('ttl_days', sa.Integer(), nullable=False),
    sa.Column('confirmed_by', sa.String(length=64), nullable=True),
    sa.Column('confirmed_at', phoneops.core.db.UtcDateTime(timezone=True), nullable=True),
    sa.Column('looked_up', sa.Integer(), nullable=False),
    sa.Column('review', sa.Integer(), nullable=False),
    sa.Column('failed', sa.Integer(), nullable=False),
    sa.Column('credits_spent', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('breakdown', sa.JSON(), nullable=False),
    sa.Column('clean_file_id', sa.String(length=36), nullable=True),
    sa.Column('raw_file_id', sa.String(length=36), nullable=True),
    sa.Column('message', sa.Text(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('created_at', phoneops.core.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('started_at', phoneops.core.db.UtcDateTime(timezone=True), nullable=True),
    sa.Column('finished_at', phoneops.core.db.UtcDateTime(timezone=True), nullable=True),
    sa.Column('updated_at', phoneops.core.db.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['clean_file_id'], ['files.id'],
        name=op.f('fk_hlr_lookups_clean_file_id_files'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_hlr_lookups_job_id_jobs'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['raw_file_id'], ['files.id'],
        name=op.f('fk_hlr_lookups_raw_file_id_files'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_hlr_lookups'))
    )
    with op.batch_alter_table('hlr_lookups', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_hlr_lookups_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_hlr_lookups_status'), ['status'], unique=False)

    op.create_table('hlr_calls',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('lookup_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('numbers', sa.Integer(), nullable=False),
    sa.Column('provider_batch_id', sa.String(length=64), nullable=True),
    sa.Column('num_complete', sa.Integer(), nullable=False),
    sa.Column('credits', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', phoneops.core.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('started_at', phoneops.core.db.UtcDateTime(timezone=True), nullable=True),
    sa.Column('poll_since', phoneops.core.db.UtcDateTime(timezone=True), nullable=True),
    sa.Column('settled_at', phoneops.core.db.UtcDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['lookup_id'], ['hlr_lookups.id'],
        name=op.f('fk_hlr_calls_lookup_id_hlr_lookups'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_hlr_calls'))
    )
    with op.batch_alter_table('hlr_calls', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_hlr_calls_lookup_id'), ['lookup_id'], unique=False)

    op.create_table('hlr_results',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('blind_index', sa.LargeBinary(length=32), nullable=False),
    sa.Column('lookup_id', sa.Integer(), nullable=True),
    sa.Column('call_id', sa.Integer(), nullable=True),
    sa.Column('looked_up_at', phoneops.core.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('live_status', sa.String(length=32), nullable=False),
    sa.Column('number_type', sa.String(length=32), nullable=False),
    sa.Column('original_network', sa.String(length=200), nullable=False),
    sa.Column('original_mccmnc', sa.String(length=8), nullable=False),
    sa.Column('current_network', sa.String(length=200), nullable=False),
    sa.Column('current_mccmnc', sa.String(length=8), nullable=False),
    sa.Column('country_iso3', sa.String(length=3), nullable=False),
    sa.Column('ported', sa.Boolean(), nullable=True),
    sa.Column('credits_spent', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('provider_uuid', sa.String(length=64), nullable=False),
    sa.Column('provider_time', phoneops.core.db.UtcDateTime(timezone=True), nullable=True),
    sa.Column('raw', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['call_id'], ['hlr_calls.id'],
        name=op.f('fk_hlr_results_call_id_hlr_calls'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['lookup_id'], ['hlr_lookups.id'],
        name=op.f('fk_hlr_results_lookup_id_hlr_lookups'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_hlr_results'))
    )
    with op.batch_alter_table('hlr_results', schema=None) as batch_op:
        batch_op.create_index('ix_hlr_results_blind_index_looked_up_at', ['blind_index', 'looked_up_at'], unique=False)

    op.create_table('hlr_lookup_items',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('lookup_id', sa.Integer(), nullable=False),
    sa.Column('blind_index', sa.LargeBinary(length=32), nullable=False),
    sa.Column('sealed', sa.LargeBinary(length=128), nullable=False),
    sa.Column('country', sa.String(length=2), nullable=True),
    sa.Column('state', sa.String(length=12), nullable=False),
    sa.Column('call_id', sa.Integer(), nullable=True),
    sa.Column('result_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('outcome', sa.String(length=16), nullable=True),
    sa.Column('reason', sa.String(length=64), nullable=True),
    sa.Column('note', sa.String(length=200), nullable=True),
    sa.ForeignKeyConstraint(['call_id'], ['hlr_calls.id'],
        name=op.f('fk_hlr_lookup_items_call_id_hlr_calls'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['lookup_id'], ['hlr_lookups.id'],
        name=op.f('fk_hlr_lookup_items_lookup_id_hlr_lookups'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['result_id'], ['hlr_results.id'],
        name=op.f('fk_hlr_lookup_items_result_id_hlr_results'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_hlr_lookup_items')),
    sa.UniqueConstraint('lookup_id', 'blind_index', name=op.f('uq_hlr_lookup_items_lookup_id_blind_index'))
    )
    with op.batch_alter_table('hlr_lookup_items', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_hlr_lookup_items_call_id'), ['call_id'], unique=False)
        batch_op.create_index('ix_hlr_lookup_items_lookup_id_state', ['lookup_id', 'state'], unique=False)

    # The risky operator names (SEED_NAMES above).
    risky = sa.table(
        "hlr_risky_operators",
        sa.column("name", sa.String), sa.column("normalized", sa.String), sa.column("mccmnc", sa.String),
        sa.column("source", sa.String), sa.column("created_by", sa.String),
        sa.column("created_at", phoneops.core.db.UtcDateTime(timezone=True)),
    )
    now = datetime.now(UTC)
    op.bulk_insert(risky, [{"name": name, "normalized": re.sub(r"\s+", "", name).lower(), "source": "seed",
                            "created_by": "system", "mccmnc": "", "created_at": now} for name in SEED_NAMES])
    # ### end Alembic commands ###


def downgrade() -> None:
    # ### commands auto generated by Alembic - please adjust! ###
    with op.batch_alter_table('hlr_lookup_items', schema=None) as batch_op:
        batch_op.drop_index('ix_hlr_lookup_items_lookup_id_state')
        batch_op.drop_index(batch_op.f('ix_hlr_lookup_items_call_id'))

    op.drop_table('hlr_lookup_items')
    with op.batch_alter_table('hlr_results', schema=None) as batch_op:
        batch_op.drop_index('ix_hlr_results_blind_index_looked_up_at')

    op.drop_table('hlr_results')
    with op.batch_alter_table('hlr_calls', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_hlr_calls_lookup_id'))

    op.drop_table('hlr_calls')
    with op.batch_alter_table('hlr_lookups', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_hlr_lookups_status'))
        batch_op.drop_index(batch_op.f('ix_hlr_lookups_created_at'))

    op.drop_table('hlr_lookups')
    with op.batch_alter_table('hlr_risky_operators', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_hlr_risky_operators_normalized'))
        batch_op.drop_index(batch_op.f('ix_hlr_risky_operators_mccmnc'))

    op.drop_table('hlr_risky_operators')
    op.drop_table('hlr_outcome_rules')
    # ### end Alembic commands ###

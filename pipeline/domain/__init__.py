"""Domain: the hotline's rules as pure functions, with no session and no network.

The canonical form of a reported URL (`urls`), the routing rules and the directory
of destinations (`rules`), notice rendering (`notices`) and the roles with what
each may do (`access`). It may read the tables' classes of `store`, never a session.
"""

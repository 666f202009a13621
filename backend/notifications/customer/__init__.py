"""Customer notifications: what the customer of a visit is told, and the public pages behind the
links in those messages (tracking, feedback, unsubscribe).

Messages are outbox rows of topic ``customer`` with an already rendered payload; the relay
(``backend.notifications``) delivers them by email or SMS.
"""
